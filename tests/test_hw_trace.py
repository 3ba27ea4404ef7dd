"""The trace of a real training step: GEMMs, element-wise work, phases, FLOPs vs torch's counter."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tqpinn.hw.recorder import record_step
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.trace import GemmRecord, Trace
from tqpinn.nn import MLP
from tqpinn.quant import fastpath
from tqpinn.train.config import config_from_dict

WIDTHS = [16, 16]


def tiny(estimator: dict, quant: str = "fp32", **model) -> dict:
    return {
        "problem": {"name": "poisson", "options": {"dim": 2}},
        "model": {"widths": WIDTHS, **model},
        "estimator": estimator,
        "quant": quant,
        "train": {"steps": 5, "points": {"interior": 6, "boundary": 5}},
    }


AUTODIFF = {"name": "autodiff"}
STEIN = {"name": "stein", "sigma": 0.05, "pairs": 4}


def test_mlp_step_counts_by_hand():
    """A hand-built step with known shapes: every count follows from the layer sizes."""
    net = MLP([2, 8, 8, 1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(5, 2)

    def step():
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # Adam's state exists: the traced step is a steady-state one
    trace = record_step(step)
    shapes = sorted((g.phase, g.m, g.n, g.k) for g in trace.gemms)
    # Forward (M x K)(K x N) per layer; wgrad (N x M)(M x K) per layer; dgrad for layers 2, 3
    # (the input x needs no gradient).
    forward = [("forward", 5, 8, 2), ("forward", 5, 8, 8), ("forward", 5, 1, 8)]
    wgrad = [("wgrad", 8, 2, 5), ("wgrad", 8, 8, 5), ("wgrad", 1, 8, 5)]
    dgrad = [("dgrad", 5, 8, 8), ("dgrad", 5, 8, 1)]
    expected = sorted([*forward, *wgrad, *dgrad])
    assert shapes == expected
    assert not trace.unrouted_gemms
    assert all(g.a_format == "fp32" and g.block is None for g in trace.gemms)

    by_op = {}
    for r in trace.elementwise:
        by_op.setdefault((r.op, r.kind, r.phase), []).append(r.elements)
    # Two hidden activations of 5 rows x 8 features, forward and backward.
    assert by_op[("tanh", "activation", "forward")] == [40, 40]
    assert by_op[("tanh_backward", "autograd", "backward")] == [40, 40]
    # Adam runs each of its element-wise updates once per parameter tensor.
    n_params = sum(p.numel() for p in net.parameters())
    assert sum(by_op[("lerp_", "optimizer", "optimizer")]) == n_params
    assert all(r.phase == "optimizer" for r in trace.elementwise if r.kind == "optimizer")
    tanh = next(r for r in trace.elementwise if r.op == "tanh")
    assert tanh.bytes_read == tanh.bytes_written == 40 * 4


def test_a_matmul_outside_qops_is_recorded_as_unrouted():
    w = torch.randn(3, 4, requires_grad=True)
    x = torch.randn(6, 4)

    def step():
        (x @ w.T).sum().backward()

    trace = record_step(step)
    assert [(g.phase, g.m, g.n, g.k, g.routed) for g in trace.gemms] == [
        ("forward", 6, 3, 4, False),
        ("backward", 3, 4, 6, False),
    ]
    assert trace.gemm_flops == trace.flop_counter == 2 * (6 * 3 * 4 + 3 * 4 * 6)


@pytest.mark.parametrize("estimator", [AUTODIFF, STEIN], ids=["autodiff", "stein"])
def test_trace_flops_match_torch_flop_counter_on_fp32_training_steps(estimator):
    """Every GEMM the dispatcher ran is in the trace: 2mnk over the trace's GEMMs equals torch's
    FLOP count of the same step (within 1%: the two are counted independently, from qops events
    and from dispatcher operators; both are exact integers here)."""
    runner = StepRunner.build(config_from_dict(tiny(estimator)))
    trace = runner.trace()
    assert trace.gemms and trace.flop_counter
    assert abs(trace.gemm_flops - trace.flop_counter) <= 0.01 * trace.flop_counter
    assert not [g for g in trace.unrouted_gemms if g.kind == "layer"]
    assert {"forward", "dgrad", "wgrad"} <= {g.phase for g in trace.gemms}


def test_trace_flops_match_flop_counter_mode_on_a_stein_step():
    """FlopCounterMode itself (it cannot run autodiff steps: its module tracker rejects
    autograd.grad on leaf inputs) agrees with the trace on another step of the same shapes."""
    runner = StepRunner.build(config_from_dict(tiny(STEIN)))
    trace = runner.trace()
    with FlopCounterMode(display=False) as counter:
        runner.step()
    assert abs(trace.gemm_flops - counter.get_total_flops()) <= 0.01 * counter.get_total_flops()


def test_quantized_step_reports_block_formats_and_quantize_work():
    runner = StepRunner.build(config_from_dict(tiny(STEIN, quant="smx_paper")))
    trace = runner.trace()
    formats = {(g.phase, g.a_format, g.b_format, g.block) for g in trace.gemms if g.routed}
    # smx_paper: INT8 activations and weights, INT12 output gradients, 4x4 blocks.
    assert ("forward", "smx_int8", "smx_int8", (4, 4)) in formats
    assert ("dgrad", "smx_int12", "smx_int8", (4, 4)) in formats
    assert ("wgrad", "smx_int12", "smx_int8", (4, 4)) in formats
    # The PyTorch reference quantizer shows up as element-wise work of kind "quantize"; the
    # compiled fast path runs through ctypes, where no dispatcher hook can see it (its work is
    # then known only from the GEMM operand formats, which is what PINTA's quantizer prices).
    if not fastpath.available():
        assert trace.elements_by("kind").get("quantize", 0) > 0


def test_tt_and_diffquant_steps_are_traced():
    cfg = tiny(
        {**STEIN, "diffquant": "full"},
        quant="smx_paper",
        tt={"layers": [1], "ranks": 2, "plan": "partial", "groups": 2, "n_cores": 3},
    )
    trace = StepRunner.build(config_from_dict(cfg)).trace()
    assert trace.meta["n_params"] < 16 * 16 + 16 * 2 + 16 * 3
    assert not [g for g in trace.unrouted_gemms if g.kind == "layer"]
    assert trace.elements_by("kind")["activation"] > 0


def test_operand_bytes_count_block_exponents():
    g = GemmRecord("forward", 8, 4, 16, "smx_int8", "smx_int12", 8, 12, (4, 4))
    # 8-bit elements plus one 8-bit exponent per 16 elements: 8.5 bits; INT12: 12.5 bits.
    assert g.bytes_a == 8 * 16 * 8.5 / 8
    assert g.bytes_b == 16 * 4 * 12.5 / 8
    assert g.bytes_out == 8 * 4 * 4
    fp32 = GemmRecord("forward", 8, 4, 16, "fp32", "fp32", 32, 32, None)
    assert fp32.bytes_moved == 4 * (8 * 16 + 16 * 4 + 8 * 4)


def test_json_round_trip(tmp_path):
    trace = StepRunner.build(config_from_dict(tiny(STEIN))).trace()
    trace.save(tmp_path / "t.json")
    again = Trace.load(tmp_path / "t.json")
    assert again.to_dict() == json.loads(json.dumps(trace.to_dict()))
    assert again.gemms == trace.gemms and again.elementwise == trace.elementwise
