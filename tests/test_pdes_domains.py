"""Domain samplers: the right distributions, checked by moments with tolerances from the CLT.

With n independent samples, a sample mean is off its expectation by about std/sqrt(n); every
check allows 5 such standard errors (a two-sided miss has probability < 6e-7 per statistic, and
the seeds are fixed, so a failure means a wrong distribution, not bad luck).
"""

from __future__ import annotations

import math

import pytest
import torch

from tqpinn.pdes import AtTime, Ball, Cube, CubeBoundary, SpaceTime, Sphere

N = 20_000
Z = 5.0


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_cube_is_uniform_with_given_bounds() -> None:
    x32 = Cube(3, low=-1.0, high=2.0)(N, _gen())
    assert x32.dtype == torch.float32 and x32.shape == (N, 3)
    x = x32.double()
    assert ((x >= -1) & (x <= 2)).all()
    # U[-1, 2]: mean 0.5, variance 9/12; the variance estimate's own std is that of (x − μ)²,
    # sqrt(E(x−μ)^4 − var²) = sqrt(81/80 − 81/144) = 0.6708.
    torch.testing.assert_close(
        x.mean(0), torch.full((3,), 0.5).double(), atol=Z * 0.866 / N**0.5, rtol=0
    )
    torch.testing.assert_close(
        x.var(0), torch.full((3,), 0.75).double(), atol=Z * 0.6708 / N**0.5, rtol=0
    )


def test_cube_boundary_picks_faces_evenly() -> None:
    dim = 4
    x = CubeBoundary(dim, low=-1.0, high=1.0)(N, _gen())
    on_low, on_high = x == -1, x == 1
    # Exactly one coordinate on a wall (the others are continuous, so never exactly ±1).
    assert ((on_low | on_high).sum(1) == 1).all()
    # Each of the 2·dim faces gets Binomial(N, 1/(2dim)) points.
    p = 1 / (2 * dim)
    counts = torch.cat([on_low.sum(0), on_high.sum(0)]).double()
    assert ((counts - N * p).abs() <= Z * math.sqrt(N * p * (1 - p))).all()


@pytest.mark.parametrize("dim", [1, 2, 100])
def test_ball_radius_law_and_isotropy(dim: int) -> None:
    x = Ball(dim, radius=2.0)(N, _gen()).double()
    r = x.norm(dim=1) / 2.0
    assert (r <= 1 + 2.0**-23).all()
    # Uniform in the ball: P(r ≤ s) = s^dim, so r^dim ~ U[0, 1] (mean 1/2, std 1/sqrt(12)).
    assert abs((r**dim).mean().item() - 0.5) <= Z / math.sqrt(12 * N)
    # E x_i = 0 with E x_i² = R²·E r²/dim = 4/(dim + 2).
    se = math.sqrt(4 / (dim + 2) / N)
    assert x.mean(0).abs().max().item() <= Z * se


@pytest.mark.parametrize("dim", [2, 100])
def test_sphere_is_uniform_on_the_sphere(dim: int) -> None:
    x = Sphere(dim)(N, _gen()).double()
    assert ((x.norm(dim=1) - 1).abs() <= 2.0**-23).all()
    # E x_i = 0, E x_i² = 1/dim; second moments also isotropic.
    assert x.mean(0).abs().max().item() <= Z * math.sqrt(1 / dim / N)
    # Var(x_i²) = E x^4 − (E x²)² = 3/(dim(dim+2)) − 1/dim² for the uniform sphere.
    var_sq = 3 / (dim * (dim + 2)) - 1 / dim**2
    assert ((x**2).mean(0) - 1 / dim).abs().max().item() <= Z * math.sqrt(var_sq / N)


def test_space_time_and_at_time_append_a_time_column() -> None:
    x = SpaceTime(Cube(2), t_min=0.5, t_max=2.0)(N, _gen())
    assert x.shape == (N, 3) and x.dtype == torch.float32
    t = x[:, 2].double()
    assert ((t >= 0.5) & (t <= 2.0)).all()
    assert abs(t.mean().item() - 1.25) <= Z * (1.5 / math.sqrt(12)) / math.sqrt(N)
    y = AtTime(Ball(3), 0.25)(10, _gen())
    assert y.shape == (10, 4) and (y[:, 3] == 0.25).all()


def test_samplers_describe_their_domain() -> None:
    assert str(SpaceTime(Sphere(3))) == "sphere ‖x‖ = 1 in R^3 × t ∈ [0, 1]"
    assert str(AtTime(CubeBoundary(2), 1.0)) == "∂[0, 1]^2 × t = 1"
