"""What the full pipeline keeps for backward: quantized TT layers keep their input only (later
contractions' inputs are recomputed in backward), and the first DiffQuant activation keeps one
one-sided difference. Both store exactly the packed sizes of the formats, and both give the
same gradients, bit for bit, as storing everything."""

import math

import pytest
import torch

from tqpinn import qops
from tqpinn.formats import SMX_INT8
from tqpinn.nn import MLP, DifferenceStreams
from tqpinn.nn.layer import set_quant
from tqpinn.nn.precision import apply_quant
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import plan_cost
from tqpinn.quant import PRESETS, fastpath
from tqpinn.quant.memory import OUTSIDE, saved_bytes

PLANS = [("sequential", None), ("partial", 2), ("partial", [1, 3]), ("reconstruct", None)]
SHAPES = ([8, 4, 4, 4], [4, 4, 4, 8])  # the HJB-20D hidden layer


def _tt(plan, groups, preset="smx_paper", recompute=True):
    """recompute False: every contraction stores its own input, the reference path."""
    torch.manual_seed(0)
    layer = TTLinear(512, 512, 2, shapes=SHAPES, plan=plan, groups=groups, recompute=recompute)
    set_quant(layer, PRESETS[preset])
    return layer


def _grads(layer, x, grad_y):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(grad_y)
    return [y.detach(), x.grad, *(c.grad for c in layer.cores)]


def _layer_bytes(layer, batch):
    """Bytes the layer saves for backward (not the loss's own saves)."""
    x = torch.randn(batch, 512, requires_grad=True)
    measured = saved_bytes(lambda: layer(x).square().sum().backward(), layer)
    return measured.total - measured.per_module[OUTSIDE]


@pytest.mark.parametrize("preset", ["smx_paper", "mx_int8"])
@pytest.mark.parametrize(("plan", "groups"), PLANS)
def test_recomputed_intermediates_give_the_stored_path_bits(plan, groups, preset):
    g = torch.Generator().manual_seed(1)
    x, grad_y = torch.randn(2, 8, 512, generator=g), torch.randn(2, 8, 512, generator=g)
    recomputed = _grads(_tt(plan, groups, preset), x, grad_y)
    stored = _grads(_tt(plan, groups, preset, recompute=False), x, grad_y)
    for a, b in zip(recomputed, stored, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("plan", "groups"), PLANS)
def test_quantized_tt_keeps_its_input_packed_only(plan, groups):
    # The batch-dependent bytes (the difference of two batch sizes) are the packed input of the
    # first contraction, of the last group [a, b): (B·N_{<a}, N_g·r_b) INT8 elements and one
    # 8-bit exponent per 4x4 block.
    layer = _tt(plan, groups)
    a, b = layer.plan.bounds()[-1]
    n_f, r = layer.shape.in_factors, layer.shape.ranks
    k = math.prod(n_f[a:b]) * r[b]
    packed = [SMX_INT8.packed_bits((n * math.prod(n_f[:a]), k)) / 8 for n in (64, 16)]
    assert _layer_bytes(layer, 64) - _layer_bytes(layer, 16) == packed[0] - packed[1]
    cost = [plan_cost(layer.shape, layer.plan, [n], True, recompute=True) for n in (64, 16)]
    assert packed[0] - packed[1] == 8.5 / 8 * (cost[0].activation_elems - cost[1].activation_elems)
    assert cost[0].count("recompute") == len(layer.plan.groups) - 1


def test_stored_path_keeps_the_intermediates_too():
    # PRS 2 + 2 on 512 -> 512: the intermediate (B·16, 32) is as wide as the input.
    layer = _tt("partial", 2, recompute=False)
    per_row = SMX_INT8.packed_bits((16, 32)) / 8
    assert _layer_bytes(layer, 64) - _layer_bytes(layer, 16) == 2 * 48 * per_row


def test_the_config_switch_reaches_every_tt_layer():
    from tqpinn.train.build import build_model, build_problem
    from tqpinn.train.config import config_from_dict

    for recompute in (True, False):
        tt = {"layers": [1, 2], "ranks": 2, "plan": "partial", "groups": 2, "recompute": recompute}
        config = config_from_dict({"model": {"widths": [64, 64, 64], "tt": {**tt, "n_cores": 3}}})
        net = build_model(config, build_problem(config), None)
        layers = [m for m in net.modules() if isinstance(m, TTLinear)]
        assert len(layers) == 2 and all(m.recompute is recompute for m in layers)


def test_weight_changed_before_backward_is_an_error():
    spec = PRESETS["smx_paper"]
    w = torch.randn(8, 8, requires_grad=True)
    x = torch.randn(16, 8, requires_grad=True)
    w2 = w.detach().clone().requires_grad_()
    y, again = qops.chained_gemm(x, w2, spec)
    z, _ = qops.chained_gemm(y, w, spec, again)
    with torch.no_grad():
        w2.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        z.sum().backward()


needs_fused = pytest.mark.skipif(not fastpath.available(), reason="no fused kernel build")

N, K, D, H = 6, 5, 3, 32


def _diffquant_step(even_zero: bool):
    torch.manual_seed(0)
    net = apply_quant(MLP([D, H, H, 1]), PRESETS["smx_paper"])
    g = torch.Generator().manual_seed(2)
    x, delta = torch.rand(N, D, generator=g), 0.01 * torch.randn(N, K, D, generator=g)
    bundle = DifferenceStreams(x, 2.0 * delta, torch.zeros_like(delta), even_zero)

    def step():
        s = net(bundle)
        (s.odd.square().sum() + s.even.square().sum() + s.base.sum()).backward()

    return net, saved_bytes(step, net)


@needs_fused
def test_zero_even_stream_keeps_one_difference_with_the_same_gradients():
    net_one, one = _diffquant_step(even_zero=True)
    net_two, two = _diffquant_step(even_zero=False)
    # The first activation keeps plus alone: one packed (N·K, H) copy less, nothing else moves.
    copy = SMX_INT8.packed_bits((N * K, H)) / 8
    assert two.per_module["activation"] - one.per_module["activation"] == copy
    assert {k: v for k, v in one.per_module.items() if k != "activation"} == {
        k: v for k, v in two.per_module.items() if k != "activation"
    }
    for p, q in zip(net_one.parameters(), net_two.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


def test_input_streams_mark_even_zero_through_linear_maps_only():
    net = MLP([D, H, 1])
    s = DifferenceStreams.from_input(torch.rand(N, D), torch.randn(N, K, D))
    assert s.even_zero
    mapped = net.layers[0](s)
    assert mapped.even_zero and torch.count_nonzero(mapped.even) == 0
    assert not net.activation(mapped).even_zero
