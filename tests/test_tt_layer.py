"""TTLinear: every plan computes x Wᵀ + b exactly (float64), gradients (gradcheck), streams,
FP32 within its rounding bound, and TT-SVD from a dense layer."""

import pytest
import torch

from tqpinn.errors import UserError
from tqpinn.nn import MLP, DifferenceStreams, Linear
from tqpinn.nn.tt import TTLinear
from tqpinn.nn.tt.plans import plan_cost
from tqpinn.nn.tt.svd import tt_to_dense

# (plan, groups) for 3-core layers, then extra groupings for 4 cores
PLANS_3 = [("sequential", None), ("reconstruct", None), ("partial", [2, 1]), ("partial", [1, 2])]
PLANS_4 = [*PLANS_3[:2], ("partial", 2), ("partial", [1, 3]), ("partial", [1, 2, 1])]

# in, out, kwargs: awkward sizes padded (10 -> 12, 7 -> 8), and the paper's HJB first layer
LAYERS = [
    (10, 7, {"ranks": [2, 3], "n_cores": 3}),
    (12, 8, {"ranks": 3, "shapes": ([2, 2, 2], [2, 3, 2])}),
    (21, 512, {"ranks": 2, "shapes": ([8, 4, 4, 4], [1, 1, 3, 7])}),
]


def plans_for(layer):
    return PLANS_3 if layer.shape.n_cores == 3 else PLANS_4


def make(in_f, out_f, kwargs, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return TTLinear(in_f, out_f, **kwargs).to(dtype)


@pytest.mark.parametrize(("in_f", "out_f", "kwargs"), LAYERS)
def test_every_plan_equals_the_dense_weight_in_float64(in_f, out_f, kwargs):
    layer = make(in_f, out_f, kwargs)
    x = torch.randn(3, 5, in_f, dtype=torch.float64)
    reference = x @ layer.dense_weight().T + layer.bias  # einsum-built W, no qops
    for plan, groups in plans_for(layer):
        layer.set_plan(plan, groups)
        torch.testing.assert_close(layer(x), reference, rtol=1e-12, atol=1e-13)


def test_dense_weight_matches_a_slow_loop():
    layer = make(12, 8, {"ranks": [2, 3], "shapes": ([2, 2, 2], [2, 3, 2])})
    cores = [c.detach() for c in layer.cores]
    w = torch.zeros(8, 12, dtype=torch.float64)
    for i in range(8):
        for j in range(12):
            i_digits = (i // 4, i // 2 % 2, i % 2)
            j_digits = (j // 6, j // 2 % 3, j % 2)
            prod = torch.ones(1, 1, dtype=torch.float64)
            for core, a, b in zip(cores, i_digits, j_digits, strict=True):
                prod = prod @ core[:, a, b, :]
            w[i, j] = prod.item()
    torch.testing.assert_close(tt_to_dense(cores), w, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(("in_f", "out_f", "kwargs"), LAYERS[:2])
def test_gradcheck_every_plan(in_f, out_f, kwargs):
    layer = make(in_f, out_f, kwargs)
    x = torch.randn(4, in_f, dtype=torch.float64, requires_grad=True)
    params = [x, *layer.cores, layer.bias]
    for plan, groups in plans_for(layer):
        layer.set_plan(plan, groups)

        def f(x, *p, layer=layer):
            # functional call, so that gradcheck sees the parameters as inputs
            return torch.func.functional_call(
                layer, {f"cores.{k}": c for k, c in enumerate(p[:-1])} | {"bias": p[-1]}, (x,)
            )

        inputs = [t.detach().clone().requires_grad_() for t in params]
        assert torch.autograd.gradcheck(f, inputs), (plan, groups)


@pytest.mark.parametrize(("in_f", "out_f", "kwargs"), LAYERS)
def test_fp32_plans_within_rounding_bound(in_f, out_f, kwargs):
    # Each plan evaluates the same multilinear form y = Σ x·G_1···G_d by a chain of GEMMs. In
    # floating point (unit roundoff u) any such chain with total reduction length n satisfies
    # |ŷ − y| ≤ γ_n · (the same form on absolute values), γ_n = n u / (1 − n u) (Higham,
    # Accuracy and Stability, §3.5). The same holds for every gradient, whose chains are also
    # part of the plan's GEMMs, so n = Σ k over all of the plan's GEMMs is a valid length. The
    # absolute-value forms and their gradients are computed exactly enough in float64.
    layer64 = make(in_f, out_f, kwargs)
    x64 = torch.randn(6, in_f, dtype=torch.float64)
    dy64 = torch.randn(6, out_f, dtype=torch.float64)
    abs_cores = [c.detach().abs().requires_grad_() for c in layer64.cores]
    abs_x = x64.abs().requires_grad_()
    abs_w = tt_to_dense(abs_cores)[:out_f, :in_f]
    ((abs_x @ abs_w.T) * dy64.abs()).sum().backward()
    y_abs = abs_x.detach() @ abs_w.detach().T

    w64 = layer64.dense_weight()
    cores64 = [c.detach().requires_grad_() for c in layer64.cores]
    x_ref = x64.clone().requires_grad_()
    y_ref = x_ref @ tt_to_dense(cores64)[:out_f, :in_f].T
    (y_ref * dy64).sum().backward()
    torch.testing.assert_close(y_ref, x64 @ w64.T)

    layer32 = make(in_f, out_f, kwargs, dtype=torch.float32)
    unit = torch.finfo(torch.float32).eps / 2
    for plan, groups in plans_for(layer32):
        layer32.set_plan(plan, groups)
        n = sum(g.k for g in plan_cost(layer32.shape, layer32.plan, [6], True).gemms)
        gamma = n * unit / (1 - n * unit)
        x32 = x64.float().requires_grad_()
        layer32.zero_grad()
        y32 = layer32.contract(x32, layer32.group_matrices())
        (y32 * dy64.float()).sum().backward()
        assert torch.all((y32.double() - y_ref).abs() <= gamma * y_abs), plan
        assert torch.all((x32.grad.double() - x_ref.grad).abs() <= gamma * abs_x.grad), plan
        for c32, c_ref, c_abs in zip(layer32.cores, cores64, abs_cores, strict=True):
            assert torch.all((c32.grad.double() - c_ref.grad).abs() <= gamma * c_abs.grad), plan


@pytest.mark.parametrize(("in_f", "out_f", "kwargs"), LAYERS[:2])
def test_streams_equal_forward_differences(in_f, out_f, kwargs):
    layer = make(in_f, out_f, kwargs)
    x = torch.randn(5, in_f, dtype=torch.float64)
    delta = 0.01 * torch.randn(5, 4, in_f, dtype=torch.float64)
    for plan, groups in plans_for(layer):
        layer.set_plan(plan, groups)
        s = layer(DifferenceStreams.from_input(x, delta))
        g0, gp, gm = layer(x), layer(x[:, None] + delta), layer(x[:, None] - delta)
        torch.testing.assert_close(s.base, g0, rtol=1e-13, atol=1e-14)
        # linear: differences are the map of 2δ and 0 exactly, no bias; rounding only
        torch.testing.assert_close(s.odd, gp - gm, rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(s.even, torch.zeros_like(s.even), rtol=0, atol=1e-14)


def test_mlp_with_tt_layers_streams():
    def factory(a, b, i):
        return (
            TTLinear(a, b, ranks=2, n_cores=2, plan="partial", groups=1) if i < 2 else Linear(a, b)
        )

    torch.manual_seed(3)
    net = MLP([3, 16, 16, 1], activation="sin", linear_factory=factory).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    delta = 0.1 * torch.randn(5, 4, 3, dtype=torch.float64)
    s = net(DifferenceStreams.from_input(x, delta))
    gp, gm, g0 = net(x[:, None] + delta), net(x[:, None] - delta), net(x)
    torch.testing.assert_close(s.odd, gp - gm, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(s.even, gp + gm - 2 * g0[:, None], rtol=1e-9, atol=1e-14)


def unfolding_tail(w, shape, k, rank):
    """√Σ_{i>rank} σ_i² of W's k-th TT unfolding (m_1 n_1..m_k n_k) x (rest)."""
    d = shape.n_cores
    t = w.reshape(*shape.out_factors, *shape.in_factors)
    t = t.permute(*[i for j in range(d) for i in (j, d + j)])
    rows = 1
    for j in range(k + 1):
        rows *= shape.out_factors[j] * shape.in_factors[j]
    s = torch.linalg.svdvals(t.reshape(rows, -1))
    return s[rank:].square().sum()


@pytest.mark.parametrize("out_f", [24, 23])  # 24 = 4·3·2; 23 is prime and pads to 24
def test_from_dense_error_within_tt_svd_bounds(out_f):
    torch.manual_seed(0)
    dense = torch.nn.Linear(30, out_f).double()  # 30 = 2·3·5
    layer = TTLinear.from_dense(dense, ranks=[3, 5], n_cores=3)
    shape = layer.shape
    w = dense.weight.detach()
    err = layer.svd_rel_error
    norm2 = w.square().sum().item()
    assert err**2 == pytest.approx((layer.dense_weight() - w).square().sum().item() / norm2)
    # On the zero-padded matrix P (‖P‖ = ‖W‖), Oseledets (2011), Thm 2.2: ‖P − P_TT‖² ≤ Σ_k
    # tail_k². W − W_TT is a block of P − P_TT, so the upper bound holds for it. Without padding
    # W = P, and each unfolding of W_TT has rank ≤ r_k, so ‖W − W_TT‖² ≥ max_k tail_k²
    # (Eckart–Young).
    padded = w.new_zeros(shape.out_padded, shape.in_padded)
    padded[:out_f] = w
    tails = [unfolding_tail(padded, shape, k, shape.ranks[k + 1]) for k in range(2)]
    assert err**2 <= sum(tails) / norm2 * (1 + 1e-9)
    if out_f == shape.out_padded:
        assert max(tails) / norm2 * (1 - 1e-9) <= err**2
    torch.testing.assert_close(layer.bias, dense.bias)


def test_from_dense_recovers_an_exact_tt_weight():
    kwargs = {"ranks": [2, 3], "shapes": ([2, 2, 2], [2, 3, 2])}
    source = make(12, 8, kwargs)
    dense = Linear(12, 8).double()
    with torch.no_grad():
        dense.weight.copy_(source.dense_weight())
    layer = TTLinear.from_dense(dense, plan="partial", groups=[1, 2], **kwargs)
    assert layer.svd_rel_error < 1e-12
    x = torch.randn(4, 12, dtype=torch.float64)
    torch.testing.assert_close(layer.double()(x), dense(x), rtol=1e-11, atol=1e-12)


def test_unknown_plan_and_init_are_user_errors():
    with pytest.raises(UserError, match=r"unknown TT contraction plan 'fast'.*sequential"):
        TTLinear(16, 16, plan="fast")
    with pytest.raises(UserError, match=r"unknown TT init 'lecun'.*xavier"):
        TTLinear(16, 16, init="lecun")
    with pytest.raises(UserError, match="partial"):
        TTLinear(16, 16, plan="sequential", groups=2)
    with pytest.raises(UserError, match="summing to the 2 cores"):
        TTLinear(16, 16, n_cores=2, plan="partial", groups=[1, 2])
