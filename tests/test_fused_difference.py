"""The fused DiffQuant activation kernels on every kernel build this CPU can run: against the
exact difference (float64 evaluation of the same FP32 inputs) within the FP32 rounding of the
identity, and against the PyTorch FP32 formulas they replace.

Error budget (u = 2⁻²⁴, an ulp of x is at most 2u·|x|): each elementary function of the C
library (tanhf, coshf, sinf, cosf, vectorised or not) is within LIB_ULPS ulps, so off by at most
2·LIB_ULPS·u relative; every other operation is one rounding, at most u relative.
tanh: tb / (cosh²(a)·(1 + ta·tb)) for |b| ≤ 0.1, where 1 + ta·tb ≥ 0.9 does not cancel:
    tb (2·LIB_ULPS u), cosh² (2 · 2·LIB_ULPS u + u), 1 + ta·tb (2u + 0.1·2·LIB_ULPS u, rounded
    up to LIB_ULPS u), the product and the quotient (2u): 7·LIB_ULPS·u + 5u relative.
sin: 2·cos(a + b/2)·sin(b/2): cos and sin (2·2·LIB_ULPS u), b/2 exact, the products (2u),
    plus the rounding of the argument a + b/2 (u·|a + b/2| absolute, times the other factor
    2|sin(b/2)| ≤ |b|): 4·LIB_ULPS·u + 2u relative plus u·|a + b/2|·|b| absolute.
"""

import pytest
import torch

from tqpinn.nn import ACTIVATIONS
from tqpinn.quant import fastpath, fused_difference

U = 2.0**-24
LIB_ULPS = 4
"""Accuracy of the C library's single-precision elementary functions, in ulps (glibc's vector
math library guarantees 4; its scalar functions and SLEEF's u10 variants are within 1)."""
RELATIVE = {"tanh": (7 * LIB_ULPS + 5) * U, "sin": (4 * LIB_ULPS + 2) * U}


def _operands(scale: float, broadcast: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """FP32 a (N, 1 or K, F) over [-12, 12] (large |a|: the naive difference loses every digit
    there) and b (N, K, F) of magnitudes scale·2^[-20, 0]."""
    g = torch.Generator().manual_seed(seed)
    n, k, f = 6, 9, 67  # F not a multiple of any vector width: the loops' tails run
    a = 24 * torch.rand(n, 1 if broadcast else k, f, generator=g) - 12
    sign = torch.randint(0, 2, (n, k, f), generator=g) * 2 - 1
    b = sign * scale * torch.exp2(-20 * torch.rand(n, k, f, generator=g))
    return a, b


def _exact(activation: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """act(a + b) − act(a) of the FP32 inputs, in float64 (the reference identity, which
    tests/test_streams.py checks against the float64 subtraction to 1e-10)."""
    return ACTIVATIONS[activation]().difference_value(a.double(), b.double())


def _allowed(activation: str, a: torch.Tensor, b: torch.Tensor, exact: torch.Tensor):
    bound = RELATIVE[activation] * exact.abs()
    if activation == "sin":
        bound = bound + U * (a.double() + b.double() / 2).abs() * b.double().abs()
    return bound


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
@pytest.mark.parametrize("scale", [1e-1, 1e-4, 1e-8])
@pytest.mark.parametrize("broadcast", [True, False], ids=["a_broadcast", "a_full"])
def test_fused_difference_is_the_exact_difference_within_its_rounding(
    kernel_build, activation, scale, broadcast
):
    a, b = _operands(scale, broadcast)
    assert fused_difference.can_fuse(activation, a, b)
    got = fused_difference.difference(activation, a, b).double()
    exact = _exact(activation, a, b)
    assert torch.all((got - exact).abs() <= _allowed(activation, a, b, exact))
    # What the identity avoids: the naive FP32 subtraction has lost every digit here.
    if activation == "tanh" and scale <= 1e-4:
        naive = (torch.tanh(a + b) - torch.tanh(a)).double()
        assert torch.median((naive - exact).abs() / exact.abs()) > 0.5


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
@pytest.mark.parametrize("broadcast", [True, False], ids=["a_broadcast", "a_full"])
def test_fused_difference_matches_the_pytorch_formula(kernel_build, activation, broadcast):
    """Both are within the budget above of the exact value, so within twice it of each other."""
    a, b = _operands(1e-2, broadcast, seed=1)
    got = fused_difference.difference(activation, a, b).double()
    reference = ACTIVATIONS[activation]().difference_value(a, b).double()
    exact = _exact(activation, a, b)
    assert torch.all((got - reference).abs() <= 2 * _allowed(activation, a, b, exact))


def _exact_gradients(activation, a, b, grad):
    act = ACTIVATIONS[activation]()
    d_a, d_b = act.difference_partials(a.double(), b.double())
    g = grad.double()
    return (g * d_a).sum_to_size(a.shape), g * d_b


def _term_sizes(activation, a, b, grad):
    """Per element, bounds on the absolute rounding error of the two partials times |grad|,
    in units of the budget's relative error (tanh: d_a = −D·(t₀ + t₁), t₁ = t₀ + D, with t₀,
    t₁ and D each relatively accurate; d_b = 1 − t₁² accurate in absolute terms. sin: d_a =
    −2 sin(a + b/2) sin(b/2) and d_b = cos(a + b), whose arguments are rounded: + |arg|)."""
    a64, b64, g = a.double(), b.double(), grad.double().abs()
    if activation == "tanh":
        t0 = torch.tanh(a64)
        d = _exact("tanh", a, b)
        t1 = t0 + d
        return g * d.abs() * (t0.abs() + t1.abs()), g * (1 + 2 * t1.abs())
    h = b64 / 2
    return (
        g * 2 * h.sin().abs() * ((a64 + h).sin().abs() + (a64 + h).abs()),
        g * (1 + (a64 + b64).abs()),
    )


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
@pytest.mark.parametrize("scale", [1e-1, 1e-6])
@pytest.mark.parametrize("broadcast", [True, False], ids=["a_broadcast", "a_full"])
def test_fused_gradients_are_the_exact_partials_within_their_rounding(
    kernel_build, activation, scale, broadcast
):
    """grad_a sums K terms (when a is broadcast) in its own order: γ_K = K·u more, relative to
    the sum of the terms' magnitudes."""
    a, b = _operands(scale, broadcast, seed=2)
    grad = torch.randn(b.shape, generator=torch.Generator().manual_seed(3))
    got_a, got_b = fused_difference.difference_backward(activation, a, b, grad, True, True)
    exact_a, exact_b = _exact_gradients(activation, a, b, grad)
    size_a, size_b = _term_sizes(activation, a, b, grad)
    terms = b.shape[-2] if broadcast else 1
    relative = 2 * RELATIVE[activation] + terms * U  # the partial, its product with grad, the sum
    bound_a = relative * size_a.sum_to_size(a.shape)
    assert torch.all((got_a.double() - exact_a).abs() <= bound_a)
    assert torch.all((got_b.double() - exact_b).abs() <= 2 * RELATIVE[activation] * size_b)


@pytest.mark.parametrize("need", [(True, False), (False, True)], ids=["grad_a", "grad_b"])
def test_fused_backward_computes_only_the_gradients_asked_for(kernel_build, need):
    a, b = _operands(1e-2, True)
    grad = torch.ones_like(b)
    both = fused_difference.difference_backward("tanh", a, b, grad, True, True)
    some = fused_difference.difference_backward("tanh", a, b, grad, *need)
    for wanted, full, got in zip(need, both, some, strict=True):
        assert got is None if not wanted else torch.equal(got, full)


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
def test_difference_autograd_uses_the_fused_kernels_on_fp32(kernel_build, activation):
    """Activation.difference runs the fused kernels forward and backward for FP32 CPU tensors
    (the same values as calling them directly), the PyTorch formulas otherwise."""
    a, b = _operands(1e-3, True, seed=4)
    a.requires_grad_()
    b.requires_grad_()
    out = ACTIVATIONS[activation]().difference(a, b)
    grad = torch.randn(b.shape, generator=torch.Generator().manual_seed(5))
    out.backward(grad)
    assert torch.equal(out, fused_difference.difference(activation, a.detach(), b.detach()))
    fused_a, fused_b = fused_difference.difference_backward(
        activation, a.detach(), b.detach(), grad, True, True
    )
    assert torch.equal(a.grad, fused_a)
    assert torch.equal(b.grad, fused_b)


def test_fused_kernels_apply_only_to_fp32_cpu_operands_of_the_stream_shapes():
    a, b = _operands(1e-2, True)
    if not fastpath.available():
        pytest.skip("no kernel build runs here")
    assert fused_difference.can_fuse("tanh", a, b)
    assert not fused_difference.can_fuse("tanh", a.double(), b.double())
    assert not fused_difference.can_fuse("relu", a, b)
    assert not fused_difference.can_fuse(None, a, b)
    assert not fused_difference.can_fuse("tanh", a[:, :, :5], b)  # features differ
    assert not fused_difference.can_fuse("tanh", a[0], b)  # no matching leading dimension
    assert not fused_difference.can_fuse("tanh", a.expand(-1, 2, -1), b)  # neither 1 nor K


def _streams(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """a (N, 1, F), odd and even (N, K, F) as a layer of difference streams holds them."""
    a, plus = _operands(1e-2, True, seed)
    minus = -plus * torch.rand(plus.shape, generator=torch.Generator().manual_seed(seed + 1))
    return a, plus - minus, plus + minus


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
def test_fused_streams_are_the_fused_differences_of_the_one_sided_streams(kernel_build, activation):
    """One pass over a layer's streams computes what the unfused path computes from the fused
    difference kernels (the same FP32 operations: bit for bit), except that grad_a sums the
    2K terms of both differences in one loop: γ_2K = 2K·u of their magnitudes."""
    a, odd, even = _streams(seed=6)
    plus, minus = 0.5 * (even + odd), 0.5 * (even - odd)
    got_plus, got_minus, got_odd, got_even = fused_difference.streams(activation, a, odd, even)
    d_plus = fused_difference.difference(activation, a, plus)
    d_minus = fused_difference.difference(activation, a, minus)
    assert torch.equal(got_plus, plus) and torch.equal(got_minus, minus)
    assert torch.equal(got_odd, d_plus - d_minus) and torch.equal(got_even, d_plus + d_minus)

    gens = [torch.Generator().manual_seed(s) for s in (7, 8)]
    grad_odd, grad_even = (torch.randn(odd.shape, generator=g) for g in gens)
    grad_a, got_grad_odd, got_grad_even = fused_difference.streams_backward(
        activation, a, plus, minus, grad_odd, grad_even, True
    )
    g_plus, g_minus = grad_odd + grad_even, grad_even - grad_odd
    a_plus, b_plus = fused_difference.difference_backward(activation, a, plus, g_plus, True, True)
    a_minus, b_minus = fused_difference.difference_backward(
        activation, a, minus, g_minus, True, True
    )
    assert torch.equal(got_grad_odd, 0.5 * b_plus - 0.5 * b_minus)
    assert torch.equal(got_grad_even, 0.5 * b_plus + 0.5 * b_minus)
    size = (
        _term_sizes(activation, a, plus, g_plus)[0] + _term_sizes(activation, a, minus, g_minus)[0]
    )
    bound = (2 * RELATIVE[activation] + 2 * odd.shape[-2] * U) * size.sum_to_size(a.shape)
    assert torch.all((grad_a.double() - (a_plus + a_minus).double()).abs() <= bound)


@pytest.mark.parametrize("activation", sorted(fused_difference.KINDS))
def test_activation_streams_take_the_fused_path_on_fp32_and_the_formulas_elsewhere(
    kernel_build, activation, monkeypatch
):
    """Activation.difference_streams on FP32 CPU tensors is the fused pass (forward and
    backward); with the kernels disabled it is the PyTorch formulas, within the fused kernels'
    rounding budget of them."""
    act = ACTIVATIONS[activation]()
    a, odd, even = (t.requires_grad_() for t in _streams(seed=9))
    grads = [torch.randn(odd.shape, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]

    def run() -> list[torch.Tensor]:
        for t in (a, odd, even):
            t.grad = None
        outs = act.difference_streams(a, odd, even)
        torch.autograd.backward(outs, grads)
        return [*(o.detach() for o in outs), a.grad, odd.grad, even.grad]

    fused = run()
    plus, minus, *direct = fused_difference.streams(
        activation, a.detach(), odd.detach(), even.detach()
    )
    assert all(torch.equal(f, d) for f, d in zip(fused[:2], direct, strict=True))
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    reference = run()
    exact = _exact(activation, a.detach(), plus).abs() + _exact(activation, a.detach(), minus).abs()
    for got, want in zip(fused[:2], reference[:2], strict=True):
        assert torch.all((got - want).abs().double() <= 4 * RELATIVE[activation] * exact + 1e-30)
    # Gradients: each term within twice the budget of both paths, grad_a's 2K-term sums
    # reordered; grad_odd = ½(g₊ − g₋) may cancel, so the budget also applies absolutely, to
    # the size of the incoming gradients (the partials are at most 1 in magnitude).
    rtol = 4 * RELATIVE[activation] + 2 * odd.shape[-2] * U
    atol = 4 * RELATIVE[activation] * max(g.abs().max().item() for g in grads)
    for got, want in zip(fused[2:], reference[2:], strict=True):
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
