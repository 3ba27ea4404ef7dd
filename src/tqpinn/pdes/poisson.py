"""Poisson equation Δu = −sin(Σx) on [0, 1]^d with Dirichlet data from the exact solution.

Exact solution u = sin(Σx)/d: each ∂²/∂x_i² gives −sin(Σx)/d, so Δu = −sin(Σx) in any d
(for d = 2, u = sin(x1 + x2)/2 of the prior recipe, PAPER_NOTES.md section 7).
"""

from __future__ import annotations

import torch

from tqpinn.derivatives.fields import LAP, Fields, U
from tqpinn.pdes.base import Condition, Problem
from tqpinn.pdes.domains import Cube, CubeBoundary
from tqpinn.pdes.options import check_dim


class Poisson(Problem):
    """Poisson Δu = −sin(Σx) on [0, 1]^d, u = sin(Σx)/d on the boundary."""

    name = "poisson"
    test_size = 20_000

    def __init__(self, dim: int = 2) -> None:
        self.dim = check_dim(self.name, dim)

    def conditions(self) -> tuple[Condition, ...]:
        # Prior recipe: 100 interior + 100 boundary points a step, boundary weight 300.
        return (
            Condition("interior", frozenset({LAP}), Cube(self.dim), self._interior, 100, 1.0),
            Condition(
                "boundary", frozenset({U}), CubeBoundary(self.dim), self._boundary, 100, 300.0
            ),
        )

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x.sum(dim=1)) / self.dim

    def _interior(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.lap + torch.sin(x.sum(dim=1))

    def _boundary(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.u - self.exact(x)
