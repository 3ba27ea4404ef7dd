"""Hamilton–Jacobi–Bellman u_t + Δu − 0.05‖∇u‖² = −(1 + 0.05·d) on [0, 1]^d × [0, 1].

Exact solution u = Σx + 1 − t with terminal value u(x, 1) = Σx: u_t = −1, Δu = 0, ‖∇u‖² = d.
The prior recipe (PAPER_NOTES.md section 7) states the right-hand side −2 for d = 20; writing it
as −(1 + 0.05·d) keeps the same exact solution in every dimension and equals −2 at d = 20.

The terminal condition is a hard constraint by default: u = Σx + (1 − t)·f(x, t) with f the
network, so u(x, 1) = Σx holds exactly and only the interior residual is trained.
"""

from __future__ import annotations

import torch

from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U
from tqpinn.pdes.base import Condition, Problem
from tqpinn.pdes.domains import AtTime, Cube, SpaceTime
from tqpinn.pdes.options import check_bool, check_dim

CONTROL_COST = 0.05
"""Coefficient of ‖∇u‖² (prior recipe)."""

# Fields of f that each field of u = Σx + (1 − t)·f needs (product rule, see output_transform).
_NETWORK_NEEDS = {U: {U}, GRAD: {GRAD}, LAP: {LAP}, DT: {U, DT}}


class HJB(Problem):
    """HJB u_t + Δu − 0.05‖∇u‖² = −(1 + 0.05d) on [0, 1]^d × [0, 1], u(x, 1) = Σx."""

    name = "hjb"
    time_dependent = True
    test_size = 10_000

    def __init__(self, dim: int = 20, hard_constraint: bool = True) -> None:
        self.dim = check_dim(self.name, dim)
        self.hard_constraint = check_bool(self.name, "hard_constraint", hard_constraint)

    def conditions(self) -> tuple[Condition, ...]:
        # Prior recipe: 100 interior points a step, terminal condition hard. The soft terminal
        # term (100 points, weight 1) is our choice; the prior work gives none.
        cube = Cube(self.dim)
        interior = Condition(
            "interior", frozenset({DT, LAP, GRAD}), SpaceTime(cube), self._interior, 100, 1.0
        )
        if self.hard_constraint:
            return (interior,)
        terminal = Condition(
            "terminal", frozenset({U}), AtTime(cube, 1.0), self._terminal, 100, 1.0
        )
        return (interior, terminal)

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.dim].sum(dim=1) + 1.0 - x[:, self.dim]

    def network_needs(self, needs: frozenset[str]) -> frozenset[str]:
        if not self.hard_constraint:
            return needs
        return frozenset().union(*(_NETWORK_NEEDS[name] for name in needs))

    def output_transform(self, x: torch.Tensor, f: Fields) -> Fields:
        """u = Σx + (1 − t)·f: ∇u = 1 + (1 − t)∇f, Δu = (1 − t)Δf, u_t = −f + (1 − t)f_t.

        A field of u is None when the field of f it needs was not computed.
        """
        if not self.hard_constraint:
            return f
        space, t = x[:, : self.dim], x[:, self.dim]
        gap = 1.0 - t
        return Fields(
            u=None if f.u is None else space.sum(dim=1) + gap * f.u,
            grad=None if f.grad is None else 1.0 + gap[:, None] * f.grad,
            lap=None if f.lap is None else gap * f.lap,
            dt=None if f.u is None or f.dt is None else gap * f.dt - f.u,
        )

    def _interior(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        hamiltonian = CONTROL_COST * f.grad.square().sum(dim=1)
        return f.dt + f.lap - hamiltonian + (1.0 + CONTROL_COST * self.dim)

    def _terminal(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.u - x[:, : self.dim].sum(dim=1)
