"""The Python API refuses invalid tensors with clear errors: wrong dtype, wrong shape, NaN.

NaN is refused where it can only be bad data: at the network's input and in the points a
problem's sampler returns. Inside the quantizers it keeps the OCP MX meaning instead (a block
holding NaN or Inf decodes to NaN): raising there would turn a diverging gradient into an
exception in the middle of backward, where the divergence guard (train.on_nonfinite) is the
one that decides; what must never happen is NaN becoming a finite number, checked here.
"""

import math
from dataclasses import replace

import pytest
import torch

from tqpinn.derivatives import make_estimator
from tqpinn.errors import UserError
from tqpinn.formats import FORMATS, SMX_INT8, pack, quantize, unpack
from tqpinn.nn.linear import Linear
from tqpinn.nn.mlp import MLP
from tqpinn.nn.streams import DifferenceStreams
from tqpinn.nn.tt import TTLinear
from tqpinn.qops import gemm
from tqpinn.quant import PRESETS
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict

NOT_FLOAT = [torch.int32, torch.int64, torch.bool, torch.complex64]


@pytest.mark.parametrize("dtype", NOT_FLOAT)
def test_quantize_needs_a_float_tensor(dtype):
    with pytest.raises(TypeError, match=f"floating-point tensor, got {dtype}"):
        quantize(torch.ones(4, 4, dtype=dtype), SMX_INT8)
    with pytest.raises(TypeError, match="floating-point tensor, got list"):
        quantize([1.0, 2.0], SMX_INT8)


def test_quantize_needs_a_format_object():
    with pytest.raises(TypeError, match=r"BlockFormat .*got 'smx_int8'"):
        quantize(torch.ones(4, 4), "smx_int8")


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0), (2, 0, 5)])
def test_empty_tensors_quantize_to_empty_tensors(name, shape):
    x = torch.ones(shape)
    assert quantize(x, FORMATS[name]).shape == shape
    assert unpack(pack(x, FORMATS[name])).shape == shape


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_values_never_become_numbers(name, bad):
    fmt = FORMATS[name]
    x = torch.linspace(-1, 1, 64 * 64).reshape(64, 64)
    x[5, 7] = bad
    for q in (quantize(x, fmt), unpack(pack(x, fmt))):
        assert torch.isnan(q[5, 7])
        # Only the block holding the value is lost; every other element is a finite number.
        rows, cols = fmt.block or (64, 64)
        block = torch.zeros_like(x, dtype=torch.bool)
        block[
            5 // rows * rows : (5 // rows + 1) * rows, 7 // cols * cols : (7 // cols + 1) * cols
        ] = True
        assert torch.isnan(q[block]).all() and torch.isfinite(q[~block]).all()


SPECS = {name: PRESETS[name] for name in sorted(PRESETS)}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_gemm_refuses_operands_that_do_not_fit(spec):
    w = torch.ones(5, 4)
    with pytest.raises(ValueError, match=r"x of shape \(3, 3\) does not fit w of shape \(5, 4\)"):
        gemm(torch.ones(3, 3), w, spec)
    with pytest.raises(ValueError, match=r"w must be a matrix \(N, K\), got shape \(4,\)"):
        gemm(torch.ones(3, 4), torch.ones(4), spec)
    with pytest.raises(TypeError, match=r"x is torch\.float64 .* but w is torch\.float32"):
        gemm(torch.ones(3, 4, dtype=torch.float64), w, spec)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got torch\.int64"):
        gemm(torch.ones(3, 4, dtype=torch.int64), w, spec)
    with pytest.raises(TypeError, match="w must be a floating-point tensor, got ndarray"):
        gemm(torch.ones(3, 4), w.numpy(), spec)


LAYERS = {
    "Linear": lambda: Linear(6, 5),
    "TTLinear": lambda: TTLinear(6, 5, ranks=2),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_layers_name_the_input_they_need(make):
    layer = make()
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name}\(in_features=6\) .*shape \(3, 4\).* must be 6"):
        layer(torch.ones(3, 4))
    with pytest.raises(ValueError, match=rf"{name}\(in_features=6\) .*shape \(\)"):
        layer(torch.tensor(1.0))
    with pytest.raises(TypeError, match=f"{name} needs a floating-point tensor, got torch.int64"):
        layer(torch.ones(3, 6, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"torch\.float64 .* torch\.float32"):
        layer(torch.ones(3, 6, dtype=torch.float64))
    streams = DifferenceStreams(torch.ones(3, 4), torch.ones(3, 2, 4), torch.ones(3, 2, 4))
    with pytest.raises(ValueError, match="in_features=6"):
        layer(streams)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_network_refuses_nonfinite_inputs(bad):
    net = MLP([2, 8, 1])
    x = torch.zeros(10, 2)
    x[3, 1] = bad
    with pytest.raises(ValueError, match=r"MLP input of shape \(10, 2\) holds 1 NaN or Inf"):
        net(x)
    odd = torch.zeros(10, 4, 2)
    odd[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"shape \(10, 4, 2\) holds 1 NaN"):
        net(DifferenceStreams(torch.zeros(10, 2), odd, torch.zeros(10, 4, 2)))
    for name in ("autodiff", "stein"):
        with pytest.raises(ValueError, match="NaN or Inf"):
            make_estimator(name).fields(net, x, frozenset({"lap"}), 2)


BAD_SAMPLES = {
    "NaN": (lambda n, g: torch.full((n, 2), math.nan), "holding NaN or Inf"),
    "shape": (lambda n, g: torch.rand(n, 3, generator=g), r"float32 of shape \(8, 3\)"),
    "dtype": (lambda n, g: torch.ones(n, 2, dtype=torch.int64), r"int64 of shape \(8, 2\)"),
    "type": (lambda n, g: [[0.5, 0.5]] * n, "returned list"),
}


@pytest.mark.parametrize(("sampler", "fragment"), BAD_SAMPLES.values(), ids=BAD_SAMPLES.keys())
def test_a_bad_sampler_is_a_user_error_naming_the_condition(monkeypatch, sampler, fragment):
    cfg = {
        "problem": {"name": "poisson", "options": {"dim": 2}},
        "model": {"widths": [4]},
        "train": {"eval_points": 10, "points": {"interior": 8, "boundary": 8}},
    }
    run = trainer.build_run(config_from_dict(cfg))
    bad = run.conditions[1]
    conditions = (run.conditions[0], replace(bad, sample=sampler))
    run.setup = replace(run.setup, conditions=conditions)
    with pytest.raises(
        UserError, match=rf"'poisson': the sampler of condition 'boundary'.*{fragment}"
    ):
        trainer.sample_batch(run)
