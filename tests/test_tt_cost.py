"""The plan cost model (GEMM shapes, FLOPs, quantized operands, activation memory) equals what a
traced forward + backward of the layer actually does."""

from collections import Counter

import pytest
import torch

from tqpinn.nn import DifferenceStreams
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import plan_cost
from tqpinn.qops import observe_gemms

PLANS = [
    ("sequential", None),
    ("reconstruct", None),
    ("partial", 2),
    ("partial", [1, 3]),
    ("partial", [1, 2, 1]),
]
LAYERS = {
    "hjb_first": (21, 512, {"ranks": 2, "shapes": ([8, 4, 4, 4], [1, 1, 3, 7])}),
    "hjb_second": (512, 512, {"ranks": 2, "shapes": ([8, 4, 4, 4], [4, 4, 4, 8])}),
    "awkward": (101, 37, {"ranks": [3, 5, 2], "n_cores": 4}),
}


def traced(fn):
    events = []
    with observe_gemms(events.append):
        fn()
    return events


def shapes(events, phases=("forward", "dgrad", "wgrad")):
    return Counter((e.phase, e.m, e.n, e.k) for e in events if e.phase in phases)


def model_shapes(cost):
    return Counter((g.phase, g.m, g.n, g.k) for g in cost.gemms)


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
@pytest.mark.parametrize(("plan", "groups"), PLANS)
@pytest.mark.parametrize("input_grad", [False, True])
def test_gemm_trace_matches_cost_model(layer_name, plan, groups, input_grad):
    in_f, out_f, kwargs = LAYERS[layer_name]
    layer = TTLinear(in_f, out_f, plan=plan, groups=groups, **kwargs)
    x = torch.randn(6, in_f, requires_grad=input_grad)
    events = traced(lambda: layer(x).square().sum().backward())
    cost = plan_cost(layer.shape, layer.plan, [6], input_requires_grad=input_grad)
    assert shapes(events) == model_shapes(cost)
    for phase in ("forward", "dgrad", "wgrad"):
        assert cost.flops(phase) == sum(2 * e.m * e.n * e.k for e in events if e.phase == phase)
    contract = [g for g in cost.gemms if g.stage == "contract" and g.phase == "forward"]
    assert cost.data_path_depth == len(contract) == len(layer.plan.groups)


@pytest.mark.parametrize(("plan", "groups"), PLANS[:3])
def test_streams_trace_merges_once(plan, groups):
    in_f, out_f, kwargs = LAYERS["hjb_second"]
    layer = TTLinear(in_f, out_f, plan=plan, groups=groups, **kwargs)
    n, k = 3, 4
    s = DifferenceStreams.from_input(torch.randn(n, in_f), torch.randn(n, k, in_f))
    events = traced(lambda: sum(t.sum() for t in layer(s).streams()).backward())
    cost = plan_cost(layer.shape, layer.plan, [n, n * k, n * k])
    assert shapes(events) == model_shapes(cost)


def saved_elements(layer, batch):
    """Elements of all tensors the forward saves for the backward, through autograd's hooks."""
    seen = {}

    def pack(t):
        seen[(t.data_ptr(), t.shape, t.stride())] = t.numel()
        return t

    x = torch.randn(batch, layer.in_features)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)
    return sum(seen.values())


@pytest.mark.parametrize("layer_name", sorted(LAYERS))
@pytest.mark.parametrize(("plan", "groups"), PLANS)
@pytest.mark.parametrize("observed", [False, True])
def test_activation_memory_matches_saved_tensors(layer_name, plan, groups, observed):
    # Saved weight-side tensors do not depend on the batch; the difference between two batch
    # sizes is exactly the batch-dependent (activation) part, linear in the batch.
    in_f, out_f, kwargs = LAYERS[layer_name]
    layer = TTLinear(in_f, out_f, plan=plan, groups=groups, **kwargs)

    def run():
        return saved_elements(layer, 16) - saved_elements(layer, 4)

    if observed:  # the traced autograd Function saves its operands itself
        box = []
        traced(lambda: box.append(run()))
        measured = box[0]
    else:
        measured = run()
    cost_16 = plan_cost(layer.shape, layer.plan, [16]).activation_elems
    cost_4 = plan_cost(layer.shape, layer.plan, [4]).activation_elems
    assert measured == cost_16 - cost_4
    assert cost_16 * 4 == cost_4 * 16  # linear in the rows
