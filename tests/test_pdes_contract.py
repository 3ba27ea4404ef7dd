"""Contract tests over every registered problem and the user example.

Each problem's samplers must land in the domain its PDE is posed on (checked against the domain
written out independently below), with the right shape and dtype, reproducibly from a seed; the
residual of every condition must vanish on the exact solution, whose derivatives come from
float64 autograd (the independent reference).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U
from tqpinn.pdes import PROBLEMS, Problem, get_problem

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "allen_cahn.py") + ":AllenCahn"

# (registry name, options): every registered problem with its defaults, plus variants.
CASES = [
    *((name, {}) for name in sorted(PROBLEMS)),
    ("poisson", {"dim": 5}),
    ("heat", {"dim": 3}),
    ("hjb", {"hard_constraint": False}),
    ("hjb", {"dim": 3, "hard_constraint": False}),
    (EXAMPLE, {}),
    (EXAMPLE, {"dim": 3, "epsilon": 0.01}),
]


def _case_id(case: tuple[str, dict]) -> str:
    name, options = case
    short = "allen_cahn" if name == EXAMPLE else name
    return short + "".join(f"-{k}={v}" for k, v in options.items())


@pytest.fixture(params=CASES, ids=[_case_id(c) for c in CASES])
def problem(request: pytest.FixtureRequest) -> Problem:
    name, options = request.param
    return get_problem(name, **options)


# Rounding the float64 draw to float32 moves each coordinate by at most 2^-24 relatively, so a
# norm moves by at most 2^-24 relatively; float64 errors (~d·2^-53) are far below. Allow 2^-23.
NORM_TOL = 2.0**-23


def _in_cube(x: torch.Tensor) -> torch.Tensor:
    return ((x >= 0) & (x <= 1)).all(dim=1)


def _on_cube_boundary(x: torch.Tensor) -> torch.Tensor:
    return _in_cube(x) & ((x == 0) | (x == 1)).any(dim=1)


def _in_ball(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=1) <= 1 + NORM_TOL


def _on_sphere(x: torch.Tensor) -> torch.Tensor:
    return (x.norm(dim=1) - 1).abs() <= NORM_TOL


def _t_in(lo: float, hi: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: (t >= lo) & (t <= hi)


def _t_is(value: float) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t == value


# The domain of each condition as stated in PAPER_NOTES.md section 7 (and the example's doc):
# (space predicate, time predicate or None for a steady problem).
DOMAINS = {
    ("poisson", "interior"): (_in_cube, None),
    ("poisson", "boundary"): (_on_cube_boundary, None),
    ("heat", "interior"): (_in_ball, _t_in(0, 1)),
    ("heat", "initial"): (_in_ball, _t_is(0)),
    ("heat", "boundary"): (_on_sphere, _t_in(0, 1)),
    ("hjb", "interior"): (_in_cube, _t_in(0, 1)),
    ("hjb", "terminal"): (_in_cube, _t_is(1)),
    ("allen_cahn", "interior"): (_in_cube, _t_in(0, 1)),
    ("allen_cahn", "initial"): (_in_cube, _t_is(0)),
    ("allen_cahn", "boundary"): (_on_cube_boundary, _t_in(0, 1)),
}


def test_every_condition_has_a_stated_domain(problem: Problem) -> None:
    for cond in problem.conditions():
        assert (problem.name, cond.name) in DOMAINS


def test_samplers_land_in_the_domain(problem: Problem) -> None:
    n = 513
    for cond in problem.conditions():
        x = cond.sample(n, torch.Generator().manual_seed(1))
        assert x.shape == (n, problem.input_dim), cond.name
        assert x.dtype == torch.float32, cond.name
        assert cond.points >= 1 and cond.weight >= 0, cond.name
        space_ok, time_ok = DOMAINS[(problem.name, cond.name)]
        x64 = x.double()
        assert space_ok(x64[:, : problem.dim]).all(), cond.name
        if problem.time_dependent:
            assert time_ok(x64[:, problem.dim]).all(), cond.name
        else:
            assert time_ok is None


def test_samplers_reproducible_from_seed(problem: Problem) -> None:
    for cond in problem.conditions():
        a = cond.sample(64, torch.Generator().manual_seed(7))
        b = cond.sample(64, torch.Generator().manual_seed(7))
        c = cond.sample(64, torch.Generator().manual_seed(8))
        assert torch.equal(a, b), cond.name
        assert not torch.equal(a, c), cond.name


def test_test_points_deterministic(problem: Problem) -> None:
    a, b = problem.test_points(300, seed=3), problem.test_points(300, seed=3)
    assert torch.equal(a, b)
    assert not torch.equal(a, problem.test_points(300, seed=4))
    assert a.shape == (300, problem.input_dim) and a.dtype == torch.float32


@pytest.mark.parametrize(("name", "size"), [("poisson", 20_000), ("heat", 10_000), ("hjb", 10_000)])
def test_default_test_set_has_recipe_size(name: str, size: int) -> None:
    problem = get_problem(name)
    x = problem.test_points()
    assert x.shape == (size, problem.input_dim)
    assert torch.equal(x, problem.test_points())


def exact_fields(problem: Problem, x: torch.Tensor) -> Fields:
    """u, ∇u, Δu, u_t of the exact solution by float64 autograd; Δu as a loop of d second
    derivatives (slow and obviously right)."""
    x = x.double().requires_grad_(True)
    u = problem.exact(x)
    (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = torch.zeros_like(u)
    # A gradient without a graph is constant in x (HJB's linear solution): its Δu is exactly 0.
    for i in range(problem.dim if du.requires_grad else 0):
        (d2,) = torch.autograd.grad(du[:, i].sum(), x, retain_graph=True)
        lap = lap + d2[:, i]
    dt = du[:, problem.dim] if problem.time_dependent else None
    return Fields(u=u.detach(), grad=du[:, : problem.dim].detach(), lap=lap.detach(), dt=dt)


def _only(fields: Fields, needs: frozenset[str]) -> Fields:
    """Keep the requested fields, so a residual touching anything else fails on None."""
    return Fields(**{k: getattr(fields, k) if k in needs else None for k in (U, GRAD, LAP, DT)})


def _residual_tol(problem: Problem) -> float:
    # A residual sums at most d + 10 terms (Δu sums d second derivatives), each of magnitude
    # ≤ 10 and carrying a relative error of at most ~10 roundings (libm sin/exp are within one
    # ulp); float64 unit roundoff is 2^-53.
    return (problem.dim + 10) * 10 * 10 * 2.0**-53


def test_residuals_vanish_on_exact_solution(problem: Problem) -> None:
    for cond in problem.conditions():
        x = cond.sample(32, torch.Generator().manual_seed(2)).double()
        fields = exact_fields(problem, x)
        r = cond.residual(x, _only(fields, cond.needs))
        assert r.shape == (32,), cond.name
        assert r.abs().max().item() <= _residual_tol(problem), cond.name


def test_residuals_detect_a_wrong_solution(problem: Problem) -> None:
    """Shifting any needed field by 0.1 makes the residual clearly non-zero."""
    for cond in problem.conditions():
        x = cond.sample(32, torch.Generator().manual_seed(2)).double()
        fields = _only(exact_fields(problem, x), cond.needs)
        for name in cond.needs:
            shifted = Fields(**{**vars(fields), name: getattr(fields, name) + 0.1})
            r = cond.residual(x, shifted)
            assert r.abs().max().item() > 1e-3, (cond.name, name)


def test_exact_solutions_match_paper_notes() -> None:
    """The exact solutions of PAPER_NOTES.md section 7, written out independently."""
    g = torch.Generator().manual_seed(5)
    x2 = torch.rand(50, 2, generator=g, dtype=torch.float64)
    expected = torch.sin(x2[:, 0] + x2[:, 1]) / 2
    torch.testing.assert_close(get_problem("poisson").exact(x2), expected, rtol=0, atol=1e-15)
    x = torch.rand(50, 101, generator=g, dtype=torch.float64)
    expected = (x[:, :100] ** 2).sum(dim=1) / 200 + x[:, 100]
    torch.testing.assert_close(get_problem("heat").exact(x), expected, rtol=1e-15, atol=1e-15)
    x = torch.rand(50, 21, generator=g, dtype=torch.float64)
    expected = x[:, :20].sum(dim=1) + 1 - x[:, 20]
    torch.testing.assert_close(get_problem("hjb").exact(x), expected, rtol=1e-15, atol=1e-14)


def test_hjb20_right_hand_side_is_minus_two() -> None:
    """At d = 20 the residual is u_t + Δu − 0.05‖∇u‖² + 2, as in the prior recipe."""
    problem = get_problem("hjb")
    (interior,) = problem.conditions()
    x = torch.zeros(4, 21, dtype=torch.float64)
    grad = torch.full((4, 20), 2.0, dtype=torch.float64)
    dt, lap = torch.tensor([0.5] * 4).double(), torch.tensor([-1.0] * 4).double()
    r = interior.residual(x, Fields(grad=grad, lap=lap, dt=dt))
    expected = 0.5 - 1.0 - 0.05 * 20 * 4.0 + 2.0
    torch.testing.assert_close(r, torch.full((4,), expected, dtype=torch.float64))


def test_points_and_weights_follow_recipes() -> None:
    interior, boundary = get_problem("poisson").conditions()
    assert (interior.points, interior.weight) == (100, 1.0)
    assert (boundary.points, boundary.weight) == (100, 300.0)
    heat = {c.name: (c.points, c.weight) for c in get_problem("heat").conditions()}
    assert heat == {"interior": (50, 1.0), "initial": (50, 1000.0), "boundary": (50, 1000.0)}
    (hjb,) = get_problem("hjb").conditions()
    assert (hjb.points, hjb.weight) == (100, 1.0)
