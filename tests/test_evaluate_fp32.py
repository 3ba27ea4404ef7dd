"""A quantized run is evaluated twice: as it trains, and its weights with every GEMM in FP32."""

import json

import pytest
import torch

from tqpinn.nn import MLP, fp32_gemms
from tqpinn.nn.layer import GemmLayer
from tqpinn.quant.spec import make_preset
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict
from tqpinn.train.evaluate import evaluate
from tqpinn.train.run import build_run

TINY = {
    "seed": 2,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [16, 16]},
    "estimator": {"name": "taylor"},
    "train": {"steps": 6, "eval_every": 3, "eval_points": 300, "points": {"interior": 8}},
}


def tiny(quant: str):
    return config_from_dict({**TINY, "quant": quant})


def test_the_fp32_errors_are_those_of_the_same_weights_in_an_fp32_run():
    quantized, plain = build_run(tiny("smx_paper")), build_run(tiny("fp32"))
    with torch.no_grad():
        for p in quantized.net.parameters():  # weights far from their init: errors differ
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    plain.net.load_state_dict(quantized.net.state_dict())
    errors, reference = evaluate(quantized), evaluate(plain)
    assert set(reference) == {"rel_l2", "rel_l1", "max_abs_err"}
    for key, value in reference.items():
        assert errors[f"{key}_fp32"] == value
    # The quantized forward pass is a different function: INT8 activations move every output.
    assert errors["rel_l2"] != reference["rel_l2"]


def test_metrics_hold_both_evaluations_of_a_quantized_run_only(tmp_path):
    summary = trainer.train(tiny("smx_paper"), tmp_path / "q", progress_bar=False)
    assert {"rel_l2_fp32", "rel_l1_fp32", "max_abs_err_fp32"} <= set(summary)
    records = (tmp_path / "q" / "metrics.jsonl").read_text().splitlines()
    evaluated = [json.loads(r) for r in records if "rel_l2" in r]
    assert [r["step"] for r in evaluated] == [3, 6]
    assert all("rel_l2_fp32" in r for r in evaluated)
    plain = trainer.train(tiny("fp32"), tmp_path / "f", progress_bar=False)
    assert not any(key.endswith("_fp32") for key in plain)


def test_fp32_gemms_gives_every_layer_its_own_spec_back_even_after_an_error():
    net = MLP([2, 8, 8, 1])
    specs = [make_preset("smx_paper"), None, make_preset("mx_int8")]
    layers = [m for m in net.modules() if isinstance(m, GemmLayer)]
    for layer, spec in zip(layers, specs, strict=True):
        layer.quant = spec
    with pytest.raises(RuntimeError), fp32_gemms(net):
        assert all(layer.quant is None for layer in layers)
        raise RuntimeError("inside")
    assert [layer.quant for layer in layers] == specs
