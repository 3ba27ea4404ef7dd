"""Difference streams (base, odd, even) through a network equal differences of plain forward
passes."""

import pytest
import torch

from tqpinn.nn import ACTIVATIONS, MLP, DifferenceStreams

DERIVATIVES = {"tanh": lambda a: torch.cosh(a).square().reciprocal(), "sin": torch.cos}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_difference_identity_matches_float64(activation):
    act = ACTIVATIONS[activation]()
    a = torch.linspace(-30, 30, 1001, dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    for scale in (1e-12, 1e-6, 1e-2, 1.0, 10.0):
        b = scale * torch.linspace(-1, 1, 1001, dtype=torch.float64).flip(0)
        got = act.difference(a, b)
        if scale >= 1e-2:  # the naive float64 difference is well conditioned here
            torch.testing.assert_close(got, act(a + b) - act(a), rtol=1e-10, atol=1e-12)
        else:
            # Taylor: |act(a+b) − act(a) − act'(a) b| ≤ max|act''| b²/2, and max|act''| ≤ 1
            # for tanh and sin; plus rounding in the identity: a few ulps of the result and of
            # the argument a (cos(a + b/2) is off by up to eps·|a|, times |b|).
            taylor = DERIVATIVES[activation](a) * b
            bound = b.square() / 2 + 8 * eps * (taylor.abs() + a.abs() * b.abs())
            assert torch.all((got - taylor).abs() <= bound)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_mlp_streams_equal_forward_differences(activation):
    torch.manual_seed(1)
    net = MLP([3, 16, 16, 1], activation=activation).double()
    x = torch.rand(5, 3, dtype=torch.float64)
    delta = 0.1 * torch.randn(5, 4, 3, dtype=torch.float64)
    s = net(DifferenceStreams.from_input(x, delta))
    g0 = net(x)
    gp, gm = net(x[:, None] + delta), net(x[:, None] - delta)
    torch.testing.assert_close(s.base, g0)
    torch.testing.assert_close(s.odd, gp - gm, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(s.even, gp + gm - 2 * g0[:, None], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_difference_gradients_pass_gradcheck_with_broadcast_centre(activation):
    act = ACTIVATIONS[activation]()
    g = torch.Generator().manual_seed(5)
    a = (3 * torch.randn(4, 1, 6, generator=g, dtype=torch.float64)).requires_grad_()
    b = (0.3 * torch.randn(4, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(act.difference, (a, b))


SECOND = {"tanh": lambda a: -2 * torch.tanh(a) * torch.cosh(a).square().reciprocal(),
          "sin": lambda a: -torch.sin(a)}  # fmt: skip


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_difference_partials_keep_their_precision_for_tiny_differences(activation):
    """∂/∂a of act(a+b) − act(a) is act'(a+b) − act'(a) ≈ act''(a)·b: computed by subtraction it
    would be rounding noise for |b| ≪ 1. The identities keep it within Taylor's remainder
    max|act'''|·b²/2 (max|act'''| is 2 for tanh, 1 for sin; bound 2b², a 2x margin)
    plus a few ulps."""
    act = ACTIVATIONS[activation]()
    a = torch.linspace(-6, 6, 601, dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    for scale in (1e-10, 1e-6, 1e-3):
        b = scale * torch.linspace(-1, 1, 601, dtype=torch.float64).flip(0)
        d_a, d_b = act.difference_partials(a, b)
        taylor = SECOND[activation](a) * b
        bound = 2 * b.square() + 16 * eps * (taylor.abs() + b.abs())
        assert torch.all((d_a - taylor).abs() <= bound)
        torch.testing.assert_close(d_b, DERIVATIVES[activation](a + b), rtol=1e-12, atol=1e-15)


def test_difference_keeps_only_its_two_inputs_for_backward():
    a = torch.randn(3, 1, 8, requires_grad=True)
    b = torch.randn(3, 4, 8, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    for activation in sorted(ACTIVATIONS):
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ACTIVATIONS[activation]().difference(a, b)
        assert [tuple(t.shape) for t in saved] == [(3, 1, 8), (3, 4, 8)]
