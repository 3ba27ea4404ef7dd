"""Quantized TT plans: the traced quantization points match the cost model, the error vs FP32
is quantization only, and DiffQuant streams survive it."""

from collections import Counter

import pytest
import torch

from tqpinn.nn import DifferenceStreams
from tqpinn.nn.layer import set_quant
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import plan_cost
from tqpinn.qops import observe_gemms
from tqpinn.quant.spec import resolve_quant

PLANS = [("sequential", None), ("partial", 2), ("partial", [1, 3]), ("reconstruct", None)]
SHAPES = ([8, 4, 4, 4], [4, 4, 4, 8])  # the HJB-20D hidden layer


def int_spec(bits):
    """smx_paper with b-bit activations/weights and (b + 4)-bit gradients, 4x4 blocks."""
    act, grad = {"bits": bits, "block": [4, 4]}, {"bits": bits + 4, "block": [4, 4]}
    roles = {"fwd.input": act, "fwd.weight": act, "dgrad.weight": act, "wgrad.input": act}
    roles |= {"dgrad.grad_output": grad, "wgrad.grad_output": grad}
    return resolve_quant({"base": "smx_paper", **roles})


def run(layer, x, grad_y):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(grad_y)
    return {
        "output": y.detach(),
        "grad_input": x.grad,
        "grad_cores": torch.cat([c.grad.flatten() for c in layer.cores]),
    }


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(("plan", "groups"), PLANS)
@pytest.mark.parametrize("merge", ["fp32", "quantized"])
def test_error_vs_fp32_scales_with_the_quantization_step(plan, groups, merge):
    # Every quantized operand is rounded to a grid of step 2^(e − (b − 2)) per block; each
    # rounding error is proportional to the step, and the output and gradient errors are sums of
    # ~10^5 of them, so their norm scales as 2^−b: going from b = 8 to b = 10 divides it by 4.
    # A plan that computed something other than the FP32 map would leave an error that does not
    # shrink with the step. Band 4·[0.8, 1.25]: the measured spread over plans is 3.8..4.2.
    torch.manual_seed(0)
    layer = TTLinear(512, 512, 2, shapes=SHAPES, plan=plan, groups=groups, merge=merge)
    x, grad_y = torch.sin(torch.randn(256, 512)), torch.randn(256, 512)
    set_quant(layer, None)
    ref = run(layer, x, grad_y)
    errors = {}
    for bits in (8, 10):
        set_quant(layer, int_spec(bits))
        errors[bits] = {k: rel(v, ref[k]) for k, v in run(layer, x, grad_y).items()}
    for key in ref:
        assert 3.2 <= errors[8][key] / errors[10][key] <= 5.0, (key, errors)
    assert errors[8]["output"] < 0.05  # INT8 4x4: a few 2^−7 relative roundings per chain


@pytest.mark.parametrize(("plan", "groups"), PLANS)
def test_diffquant_streams_keep_tiny_differences(plan, groups):
    # The odd stream of a linear layer is the map of the input differences 2δ, |δ| ~ 1e−3, far
    # below one INT8 step of x (~2^−7 for |x| ~ 1). Quantized as its own stream it keeps the
    # layer's relative accuracy; the difference of the quantized perturbed outputs loses it.
    torch.manual_seed(1)
    layer = TTLinear(512, 512, 2, shapes=SHAPES, plan=plan, groups=groups)
    x = torch.sin(torch.randn(4, 512))
    delta = 1e-3 * torch.randn(4, 8, 512)
    with torch.no_grad():
        exact = layer(DifferenceStreams.from_input(x, delta)).odd
        set_quant(layer, resolve_quant("smx_paper"))
        streams = layer(DifferenceStreams.from_input(x, delta)).odd
        naive = layer(x[:, None] + delta) - layer(x[:, None] - delta)
    assert rel(streams, exact) < 0.05
    assert rel(naive, exact) > 0.5


@pytest.mark.parametrize(("plan", "groups"), PLANS)
@pytest.mark.parametrize("merge", ["fp32", "quantized"])
def test_quantized_operands_match_trace(plan, groups, merge):
    layer = TTLinear(512, 512, 2, shapes=SHAPES, plan=plan, groups=groups, merge=merge)
    set_quant(layer, resolve_quant("smx_paper"))
    x = torch.randn(8, 512, requires_grad=True)
    events = []
    with observe_gemms(events.append):
        layer(x).square().sum().backward()
    cost = plan_cost(layer.shape, layer.plan, [8], input_requires_grad=True, recompute=True)
    traced = Counter((e.phase, e.m, e.n, e.k) for e in events)
    assert traced == Counter((g.phase, g.m, g.n, g.k) for g in cost.gemms)
    for phase in ("forward", "dgrad", "wgrad"):
        quantized = [fmt for e in events if e.phase == phase for fmt in (e.a_format, e.b_format)]
        assert cost.quantized_operands(phase) == sum(f != "fp32" for f in quantized)
    # every plan runs d GEMMs forward (d − g merges, g contractions); fp32 merges leave 2g
    # quantized operands: one activation and one (merged) core per group
    groups_n = len(layer.plan.groups)
    expected = 2 * 4 if merge == "quantized" else 2 * groups_n
    assert cost.quantized_operands("forward") == expected
