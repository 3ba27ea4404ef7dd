"""Stein's estimator against a slow reference of its formulas, its statistics on functions with
known smoothed derivatives, and the agreement of its two evaluation paths."""

import math

import pytest
import torch
from torch import nn

from tqpinn.derivatives import DT, GRAD, LAP, Stein, U
from tqpinn.nn import MLP, StreamModule

EPS64 = torch.finfo(torch.float64).eps
ALL = frozenset({U, GRAD, LAP, DT})
# Rounding of one network value relative to 1 + |g|: a few layers of dot products of width <= 16,
# each within (width · eps) of exact (the standard dot-product bound), so 64 eps is generous.
VALUE_ULPS = 64


class Quadratic(nn.Module):
    """g(x) = Σ_j (a_j x_j² / 2 + b_j x_j) + c: diagonal Hessian diag(a) over all D columns."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, c: float) -> None:
        super().__init__()
        self.a, self.b, self.c = a, b, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.a * x.square() + self.b * x).sum(-1, keepdim=True) + self.c


class Sinusoid(nn.Module):
    """g(x) = sin(a·x + phase); its Gaussian smoothing is g's value times exp(−σ²‖a‖²/2)."""

    def __init__(self, a: torch.Tensor, phase: float) -> None:
        super().__init__()
        self.a, self.phase = a, phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x @ self.a + self.phase)[:, None]


class Counting(StreamModule):
    """Records the rows of every tensor call and counts stream-bundle calls."""

    def __init__(self, net: MLP) -> None:
        super().__init__()
        self.net, self.rows, self.stream_calls = net, [], 0

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return self.net(x)

    def forward_bundle(self, bundle, **options):
        self.stream_calls += 1
        return self.net(bundle, **options)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def slow_reference(g, x, z, sigma, n_space):
    """The formulas of PAPER_NOTES.md section 2, one point and one pair at a time (float64)."""
    n, k, dims = z.shape
    out = {name: [] for name in ("center", "smoothed", GRAD, LAP, DT)}
    for p in range(n):
        g0 = float(g(x[p : p + 1]))
        grad_all, lap, smoothed = torch.zeros(dims, dtype=torch.float64), 0.0, 0.0
        for q in range(k):
            gp = float(g(x[p : p + 1] + sigma * z[p, q]))
            gm = float(g(x[p : p + 1] - sigma * z[p, q]))
            grad_all += z[p, q] * (gp - gm) / (2 * sigma * k)
            lap += (z[p, q, :n_space].square().sum() - n_space) * (gp + gm - 2 * g0)
            smoothed += (gp + gm) / (2 * k)
        out["center"].append(g0)
        out["smoothed"].append(smoothed)
        out[GRAD].append(grad_all[:n_space])
        out[LAP].append(float(lap) / (2 * sigma**2 * k))
        out[DT].append(float(grad_all[n_space]))
    return {
        name: torch.stack(v) if name == GRAD else torch.tensor(v, dtype=torch.float64)
        for name, v in out.items()
    }


def rounding_bounds(g_max: float, z: torch.Tensor, sigma: float, n_space: int) -> dict:
    """Worst-case effect of value rounding (VALUE_ULPS · eps · (1 + max|g|) per value) on each
    field: the odd difference carries 2 such errors, the even one 4, times the largest weight."""
    err = VALUE_ULPS * EPS64 * (1 + g_max)
    lap_weight = (z[..., :n_space].square().sum(-1) - n_space).abs().max() / (2 * sigma**2)
    return {
        U: 2 * err,
        GRAD: 2 * err * z.abs().max() / (2 * sigma),
        DT: 2 * err * z.abs().max() / (2 * sigma),
        LAP: 4 * err * lap_weight,
    }


@pytest.mark.parametrize("diffquant", ["off", "input", "full"])
@pytest.mark.parametrize("value", ["center", "smoothed"])
def test_matches_slow_reference(diffquant, value):
    torch.manual_seed(2)
    net = MLP([3, 8, 8, 1], activation="tanh").double()
    x = torch.rand(4, 3, dtype=torch.float64)
    est = Stein(sigma=0.05, pairs=6, value=value, diffquant=diffquant)
    got = est.fields(net, x, ALL, n_space=2, generator=gen(7))
    # The estimator draws its perturbations first: z (N, K, D) from the generator.
    z = torch.randn(4, 6, 3, generator=gen(7), dtype=torch.float64)
    with torch.no_grad():
        ref = slow_reference(net, x, z, 0.05, 2)
        g_max = float(net(x).abs().max()) + 1.0
    tol = rounding_bounds(g_max, z, 0.05, 2)
    torch.testing.assert_close(got.u, ref[value], rtol=0, atol=tol[U])
    for name in (GRAD, LAP, DT):
        torch.testing.assert_close(getattr(got, name), ref[name], rtol=0, atol=float(tol[name]))


@pytest.mark.parametrize("activation", ["tanh", "sin"])
def test_values_and_streams_paths_agree_in_float64(activation):
    torch.manual_seed(3)
    net = MLP([3, 16, 16, 1], activation=activation).double()
    x = torch.rand(4, 3, dtype=torch.float64)
    sigma, pairs, n_space = 0.01, 16, 2
    fields, param_grads = {}, {}
    for path in ("off", "full"):
        est = Stein(sigma=sigma, pairs=pairs, value="smoothed", diffquant=path)
        f = est.fields(net, x, ALL, n_space, generator=gen(11))
        fields[path] = f
        # The output bias cancels in the Laplacian (unused by the streams path): zero gradient.
        param_grads[path] = torch.autograd.grad(
            f.lap.sum(), list(net.parameters()), allow_unused=True, materialize_grads=True
        )
    z = torch.randn(4, pairs, 3, generator=gen(11), dtype=torch.float64)
    with torch.no_grad():
        g_max = float(net(x).abs().max()) + 1.0
    tol = rounding_bounds(g_max, z, sigma, n_space)
    for name in (U, GRAD, LAP, DT):
        a, b = getattr(fields["off"], name), getattr(fields["full"], name)
        torch.testing.assert_close(a, b, rtol=0, atol=float(tol[name]))
    # ∂(Σ lap)/∂θ = Σ_rows c_r ∂g_r/∂θ with the Laplacian weights c_r; rounding of each row's
    # gradient (VALUE_ULPS · eps · its size) is amplified by Σ|c_r|.
    weight = (z[..., :n_space].square().sum(-1) - n_space).abs() / (2 * sigma**2 * pairs)
    sum_abs_weights = float(4 * weight.sum())  # each pair enters with g+, g−, and 2 g0
    scale = max(float(g.abs().max()) for g in param_grads["off"]) + 1.0
    for a, b in zip(param_grads["off"], param_grads["full"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=VALUE_ULPS * EPS64 * scale * sum_abs_weights)


def loglog_slope(xs, ys, sd_log_ys):
    """Least-squares slope of log y on log x and its standard deviation (independent errors)."""
    lx = torch.tensor([math.log(v) for v in xs], dtype=torch.float64)
    ly = torch.tensor([math.log(v) for v in ys], dtype=torch.float64)
    sd = torch.tensor(sd_log_ys, dtype=torch.float64)
    dx = lx - lx.mean()
    slope = float((dx * (ly - ly.mean())).sum() / dx.square().sum())
    slope_sd = float((dx.square() * sd.square()).sum().sqrt() / dx.square().sum())
    return slope, slope_sd


def test_quadratic_estimates_are_unbiased_with_error_falling_as_one_over_sqrt_pairs():
    # g = Σ a_j x_j²/2 + b·x + c on 3 space columns and time. For a quadratic the differences are
    # exact: odd_k = 2σ v·z_k (v = ∇g over all D columns) and even_k = σ² z_kᵀ diag(a) z_k, so
    # one pair's estimates, whatever σ, are z_i (v·z) for ∂_i and (‖z_s‖² − d)(Σ_j a_j z_j²)/2
    # for Δ. With E z² = 1, E z⁴ = 3 and y = z² − 1 (E y² = 2, E y³ = 8, E y⁴ = 60):
    #   Var ∂_i = ‖v‖² + v_i²,
    #   Var Δ   = 12 Σ_s a_i² + d ‖a‖² + tr_s² + 4 tr_all tr_s + d tr_all² / 2.
    # The mean over K pairs has variance Var/K: error ∝ K^(−1/2), at the analytic magnitude.
    a = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    b = torch.tensor([0.3, -0.7, 1.1, 0.2], dtype=torch.float64)
    g, d = Quadratic(a, b, 0.4), 3
    x0 = torch.tensor([0.2, -0.5, 0.9, 0.6], dtype=torch.float64)
    v = a * x0 + b
    tr_s, tr_all = float(a[:d].sum()), float(a.sum())
    var = {
        GRAD: float(sum(v.square().sum() + v[i] ** 2 for i in range(d))),  # summed over i < d
        DT: float(v.square().sum() + v[d] ** 2),
        LAP: float(
            12 * a[:d].square().sum()
            + d * a.square().sum()
            + tr_s**2
            + 4 * tr_all * tr_s
            + d * tr_all**2 / 2
        ),
    }
    exact = {GRAD: v[:d], DT: v[d], LAP: torch.tensor(tr_s, dtype=torch.float64)}
    replicas, pair_counts = 2000, (4, 16, 64, 256)  # N independent estimates per K
    x = x0.expand(replicas, 4)
    sq_err = {name: [] for name in exact}
    for k in pair_counts:
        f = Stein(sigma=0.01, pairs=k).fields(g, x, frozenset(exact), d, generator=gen(k))
        for name, true in exact.items():
            err = getattr(f, name) - true
            # Unbiased: the mean error is within 4 standard errors of zero.
            bound = 4 * math.sqrt(var[name] / (k * replicas))
            assert err.mean(0).abs().max() <= bound, (name, k)
            sq_err[name].append(err.square().reshape(replicas, -1).sum(1))
    for name in exact:
        mse = [float(e.mean()) for e in sq_err[name]]
        # Relative standard error of each MSE from the spread of the squared errors; the log of
        # the RMSE has half that standard deviation.
        rel_se = [float(e.std() / (e.mean() * math.sqrt(replicas))) for e in sq_err[name]]
        slope, slope_sd = loglog_slope(pair_counts, [m**0.5 for m in mse], [r / 2 for r in rel_se])
        assert abs(slope + 0.5) <= 4 * slope_sd, (name, slope, slope_sd)
        for k, m, r in zip(pair_counts, mse, rel_se, strict=True):
            assert abs(m * k / var[name] - 1) <= 4 * r, (name, k, m * k / var[name], r)


def test_smoothing_bias_shrinks_like_sigma_squared():
    # g = sin(a·x + φ) on 2 space columns and time, perturbed jointly. E over δ of each estimate
    # is the derivative of the smoothed f = g · exp(−s), s = σ²‖a‖²/2 (all D columns), so the
    # bias against g's derivative is (exp(−s) − 1) times it: relative bias r(s) = exp(−s) − 1.
    # Its log-log slope in σ is 2s/(eˢ − 1) ∈ [2 − s, 2]. The bias is measured with a control
    # variate: the same perturbations applied to g's quadratic Taylor model g_T at x0, for which
    # the estimator is exactly unbiased (test above), so mean(est_g − est_T) estimates the bias
    # with a noise that is O(σ²) like the bias itself, not O(1).
    a = torch.tensor([0.9, -0.6, 0.9], dtype=torch.float64)
    phase, d = 0.3, 2
    x0 = torch.tensor([0.4, 0.2, 0.5], dtype=torch.float64)
    theta = float(a @ x0) + phase
    g = Sinusoid(a, phase)
    sin0, cos0 = math.sin(theta), math.cos(theta)

    def taylor(x: torch.Tensor) -> torch.Tensor:
        h = (x - x0) @ a
        return (sin0 + cos0 * h - 0.5 * sin0 * h.square())[:, None]

    exact = {GRAD: a[:d] * cos0, DT: a[d] * cos0, LAP: -a[:d].square().sum() * sin0}
    norm_a2 = float(a.square().sum())
    sigmas, replicas, pairs = (0.025, 0.05, 0.1, 0.2), 1000, 64
    x = x0.expand(replicas, 3)
    rel_bias = {name: [] for name in exact}
    rel_se = {name: [] for name in exact}
    for sigma in sigmas:
        est = Stein(sigma=sigma, pairs=pairs)
        fg = est.fields(g, x, frozenset(exact), d, generator=gen(5))
        ft = est.fields(taylor, x, frozenset(exact), d, generator=gen(5))
        s = sigma**2 * norm_a2 / 2
        for name, true in exact.items():
            # Project onto the exact derivative (a vector for GRAD) to get one relative bias.
            t = true.reshape(-1)
            diff = (getattr(fg, name) - getattr(ft, name)).reshape(replicas, -1)
            proj = diff @ t / t.square().sum()
            rel_bias[name].append(float(proj.mean()))
            rel_se[name].append(float(proj.std() / math.sqrt(replicas)))
            assert abs(rel_bias[name][-1] - (math.exp(-s) - 1)) <= 4 * rel_se[name][-1], (
                name,
                sigma,
            )
    s_max = max(sigmas) ** 2 * norm_a2 / 2
    for name in exact:
        sd_log = [se / abs(r) for se, r in zip(rel_se[name], rel_bias[name], strict=True)]
        slope, slope_sd = loglog_slope(sigmas, [abs(r) for r in rel_bias[name]], sd_log)
        assert 2 - s_max - 4 * slope_sd <= slope <= 2 + 4 * slope_sd, (name, slope, slope_sd)


def test_perturbations_come_from_the_generator():
    net = MLP([3, 8, 1]).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    est = Stein(pairs=8)
    first, again = (est.fields(net, x, ALL, 2, generator=gen(1)) for _ in range(2))
    other = est.fields(net, x, ALL, 2, generator=gen(2))
    for name in (GRAD, LAP, DT):
        assert torch.equal(getattr(first, name), getattr(again, name))
        assert not torch.equal(getattr(first, name), getattr(other, name))


@pytest.mark.parametrize(
    ("needs", "value", "rows"),
    [
        # N = 3 points, K = 4 pairs: the centre costs N rows, the pairs 2·N·K.
        ({U}, "center", [3]),
        ({U}, "smoothed", [3 + 24]),
        ({GRAD}, "center", [24]),
        ({DT}, "center", [24]),
        ({LAP}, "center", [3 + 24]),
        ({U, GRAD, LAP, DT}, "smoothed", [3 + 24]),
        (set(), "center", []),
    ],
)
def test_values_path_evaluates_only_what_is_needed(needs, value, rows):
    net = Counting(MLP([3, 8, 1]))
    gen_state = gen(0).get_state()
    g = gen(0)
    Stein(pairs=4, value=value).fields(net, torch.rand(3, 3), frozenset(needs), 2, generator=g)
    assert net.rows == rows
    perturbed = bool(needs - {U}) or (U in needs and value == "smoothed")
    assert torch.equal(g.get_state(), gen_state) == (not perturbed)  # draws only when perturbed


def test_streams_path_calls_the_network_once_on_a_bundle_and_on_rows_for_the_centre_value():
    net = Counting(MLP([3, 8, 1]))
    est = Stein(pairs=4, diffquant="full")
    est.fields(net, torch.rand(3, 3), frozenset({U}), 2, generator=gen(0))
    assert (net.rows, net.stream_calls) == ([3], 0)
    est.fields(net, torch.rand(3, 3), ALL, 2, generator=gen(0))
    assert (net.rows, net.stream_calls) == ([3], 1)


def test_streams_path_needs_a_stream_aware_network():
    g = Quadratic(torch.ones(2), torch.zeros(2), 0.0)
    with pytest.raises(TypeError, match=r"takes stream bundles .*StreamModule.*got Quadratic"):
        Stein(diffquant="full").fields(g, torch.rand(3, 2), frozenset({GRAD}), 2)


@pytest.mark.parametrize("diffquant", ["off", "input", "full"])
def test_float32_fields_have_the_documented_shapes(diffquant):
    net = MLP([4, 8, 1])
    f = Stein(pairs=8, diffquant=diffquant).fields(net, torch.rand(5, 4), ALL, 3, gen(0))
    assert f.u.shape == f.lap.shape == f.dt.shape == (5,)
    assert f.grad.shape == (5, 3)
    assert all(t.dtype == torch.float32 for t in (f.u, f.grad, f.lap, f.dt))


def test_time_derivative_needs_a_time_column():
    with pytest.raises(ValueError, match="dt"):
        Stein().fields(MLP([2, 4, 1]), torch.rand(3, 2), frozenset({DT}), 2)


def _parameter_grads(net: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(net.parameters())))


@pytest.mark.parametrize("rows", [slice(None), slice(2, 5)])
def test_backward_redraws_the_directions_exactly(rows):
    """The parameter gradient through ∇u and u_t (whose backward regenerates z from the saved
    generator state) equals autograd through the plain contraction with the same z, bit for bit
    up to float64 summation order."""
    torch.manual_seed(4)
    net = MLP([3, 8, 8, 1], activation="tanh").double()
    x_all = torch.rand(6, 3, dtype=torch.float64)
    est = Stein(sigma=0.05, pairs=5)
    got = est.fields_of_rows(net, x_all, rows, frozenset({GRAD, DT}), 2, generator=gen(9))
    got_grads = _parameter_grads(net, got.grad.square().sum() + got.dt.sin().sum())

    x = x_all[rows]
    z = torch.randn(6, 5, 3, generator=gen(9), dtype=torch.float64)[rows]
    g = net(torch.cat([(x[:, None] + 0.05 * z), (x[:, None] - 0.05 * z)]).reshape(-1, 3))
    g_plus, g_minus = g.reshape(2, x.shape[0], 5)
    grad_all = torch.einsum("nkd,nk->nd", z, g_plus - g_minus) / (2 * 0.05 * 5)
    ref_grads = _parameter_grads(net, grad_all[:, :2].square().sum() + grad_all[:, 2].sin().sum())
    for a, b in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_directions_are_not_saved_for_backward_when_a_generator_is_given():
    """With a generator, nothing of shape (N, K, D) is kept for backward; without one, autograd
    keeps z (the fallback)."""
    net = MLP([3, 8, 1]).double()
    x = torch.rand(4, 3, dtype=torch.float64)

    def saved_shapes(generator):
        shapes = []

        def pack(t):
            shapes.append(tuple(sorted(t.shape)))  # autograd may keep z transposed
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            Stein(pairs=7).fields(net, x, frozenset({GRAD}), 2, generator=generator)
        return shapes

    assert (3, 4, 7) not in saved_shapes(gen(0))
    assert (3, 4, 7) in saved_shapes(None)
