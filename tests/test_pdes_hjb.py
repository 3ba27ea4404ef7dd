"""HJB hard terminal constraint: output_transform against autograd of u = Σx + (1 − t)·f."""

from __future__ import annotations

import itertools

import pytest
import torch

from tqpinn.derivatives.fields import DT, FIELD_NAMES, GRAD, LAP, Fields, U
from tqpinn.pdes import get_problem

DIM = 6


def _random_smooth_f(generator: torch.Generator):
    """f(x, t) = sin(a·x + b t + c) + (q·x)² t / 2 with random float64 coefficients."""
    a, q = (torch.randn(DIM, generator=generator, dtype=torch.float64) for _ in range(2))
    b, c = torch.randn(2, generator=generator, dtype=torch.float64)

    def f(xt: torch.Tensor) -> torch.Tensor:
        x, t = xt[:, :DIM], xt[:, DIM]
        return torch.sin(x @ a + b * t + c) + 0.5 * (x @ q) ** 2 * t

    return f


def _autograd_fields(fn, xt: torch.Tensor) -> Fields:
    """Fields of a scalar function by float64 autograd, Δ as a loop over the d coordinates."""
    xt = xt.detach().requires_grad_(True)
    v = fn(xt)
    (dv,) = torch.autograd.grad(v.sum(), xt, create_graph=True)
    lap = sum(
        torch.autograd.grad(dv[:, i].sum(), xt, retain_graph=True)[0][:, i] for i in range(DIM)
    )
    return Fields(u=v, grad=dv[:, :DIM], lap=lap, dt=dv[:, DIM])


def test_output_transform_matches_autograd_of_composition() -> None:
    problem = get_problem("hjb", dim=DIM)
    g = torch.Generator().manual_seed(11)
    f = _random_smooth_f(g)
    xt = torch.rand(64, DIM + 1, generator=g, dtype=torch.float64)

    def u(z: torch.Tensor) -> torch.Tensor:
        return z[:, :DIM].sum(dim=1) + (1 - z[:, DIM]) * f(z)

    got = problem.output_transform(xt, _autograd_fields(f, xt))
    want = _autograd_fields(u, xt)
    # Values are O(10) and each side is a handful of float64 operations on the same
    # derivatives, so they agree to a few hundred ulps of 10: 1e-12 is generous but still
    # 10 orders below any product-rule mistake (which changes the fields by O(1)).
    for name in FIELD_NAMES:
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "needs",
    [frozenset(s) for r in range(1, 5) for s in itertools.combinations(sorted(FIELD_NAMES), r)],
    ids=lambda s: "+".join(sorted(s)),
)
def test_network_needs_suffice_for_requested_fields(needs: frozenset[str]) -> None:
    """Given only the network fields it asks for, the transform yields every requested field."""
    problem = get_problem("hjb", dim=DIM)
    asked = problem.network_needs(needs)
    xt = torch.rand(5, DIM + 1, dtype=torch.float64)
    full = _autograd_fields(_random_smooth_f(torch.Generator().manual_seed(0)), xt)
    f = Fields(**{k: getattr(full, k) if k in asked else None for k in FIELD_NAMES})
    out = problem.output_transform(xt, f)
    assert all(getattr(out, k) is not None for k in needs)


def test_network_needs_of_interior_residual() -> None:
    problem = get_problem("hjb")
    assert problem.network_needs(frozenset({DT, LAP, GRAD})) == {U, DT, LAP, GRAD}
    assert problem.network_needs(frozenset({LAP})) == {LAP}


def test_hard_constraint_holds_at_terminal_time() -> None:
    problem = get_problem("hjb", dim=DIM)
    xt = torch.rand(8, DIM + 1, dtype=torch.float64)
    xt[:, DIM] = 1.0
    f = Fields(u=torch.randn(8, dtype=torch.float64))
    torch.testing.assert_close(problem.output_transform(xt, f).u, xt[:, :DIM].sum(1))


def test_soft_constraint_is_identity_with_terminal_condition() -> None:
    problem = get_problem("hjb", dim=DIM, hard_constraint=False)
    needs = frozenset({DT, LAP, GRAD})
    assert problem.network_needs(needs) == needs
    f = Fields(u=torch.randn(3))
    assert problem.output_transform(torch.rand(3, DIM + 1), f) is f
    assert [c.name for c in problem.conditions()] == ["interior", "terminal"]
    assert [c.name for c in get_problem("hjb").conditions()] == ["interior"]
