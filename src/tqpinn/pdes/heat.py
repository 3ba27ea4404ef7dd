"""Heat equation u_t = Δu in the unit ball of R^d for t ∈ [0, 1].

Exact solution u = ‖x‖²/(2d) + t: Δu = 2d/(2d) = 1 = u_t. Initial data at t = 0 and Dirichlet
data on ‖x‖ = 1 come from it (prior recipe, PAPER_NOTES.md section 7).
"""

from __future__ import annotations

import torch

from tqpinn.derivatives.fields import DT, LAP, Fields, U
from tqpinn.pdes.base import Condition, Problem
from tqpinn.pdes.domains import AtTime, Ball, SpaceTime, Sphere
from tqpinn.pdes.options import check_dim


class Heat(Problem):
    """Heat u_t = Δu, x in the unit ball of R^d, t ∈ [0, 1], u = ‖x‖²/(2d) + t."""

    name = "heat"
    time_dependent = True
    test_size = 10_000

    def __init__(self, dim: int = 100) -> None:
        self.dim = check_dim(self.name, dim)

    def conditions(self) -> tuple[Condition, ...]:
        # Prior recipe: 50 points a step for each term, weights 1 / 1000 / 1000.
        ball, sphere = Ball(self.dim), Sphere(self.dim)
        return (
            Condition("interior", frozenset({DT, LAP}), SpaceTime(ball), self._interior, 50, 1.0),
            Condition("initial", frozenset({U}), AtTime(ball, 0.0), self._dirichlet, 50, 1000.0),
            Condition("boundary", frozenset({U}), SpaceTime(sphere), self._dirichlet, 50, 1000.0),
        )

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        space, t = x[:, : self.dim], x[:, self.dim]
        return space.square().sum(dim=1) / (2 * self.dim) + t

    def _interior(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.dt - f.lap

    def _dirichlet(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.u - self.exact(x)
