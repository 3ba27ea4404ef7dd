"""A user-defined PDE: Allen–Cahn reaction–diffusion with a manufactured exact solution.

    u_t = ε Δu + u − u³ + s(x, t)   on [0, 1]^d × [0, 1]

Manufactured solution v = e^(−t) · mean_i sin(π x_i): v_t = −v and Δv = −π² v, so the source
that makes v exact is s = v_t − ε Δv − v + v³ = (επ² − 2) v + v³. Initial and boundary data
are taken from v.

Train it with ``tqpinn train --config examples/allen_cahn.yaml --out runs/allen_cahn``, or build
it in Python with ``tqpinn.pdes.get_problem("examples/allen_cahn.py:AllenCahn", dim=3)``.
"""

from __future__ import annotations

import math

import torch

from tqpinn.pdes import (
    DT,
    LAP,
    AtTime,
    Condition,
    Cube,
    CubeBoundary,
    Fields,
    Problem,
    SpaceTime,
    U,
)
from tqpinn.pdes.options import check_dim, check_positive


class AllenCahn(Problem):
    """Allen–Cahn u_t = εΔu + u − u³ + s on [0, 1]^d × [0, 1], exact e^(−t)·mean sin(πx_i)."""

    name = "allen_cahn"
    time_dependent = True

    def __init__(self, dim: int = 2, epsilon: float = 0.1) -> None:
        self.dim = check_dim(self.name, dim)
        self.epsilon = check_positive(self.name, "epsilon", epsilon)

    def conditions(self) -> tuple[Condition, ...]:
        cube, walls = Cube(self.dim), CubeBoundary(self.dim)
        return (
            Condition("interior", frozenset({U, DT, LAP}), SpaceTime(cube), self.pde, 200, 1.0),
            Condition("initial", frozenset({U}), AtTime(cube, 0.0), self.dirichlet, 100, 100.0),
            Condition("boundary", frozenset({U}), SpaceTime(walls), self.dirichlet, 100, 100.0),
        )

    def exact(self, x: torch.Tensor) -> torch.Tensor:
        space, t = x[:, : self.dim], x[:, self.dim]
        return torch.exp(-t) * torch.sin(math.pi * space).mean(dim=1)

    def pde(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        v = self.exact(x)
        source = (self.epsilon * math.pi**2 - 2.0) * v + v**3
        return f.dt - self.epsilon * f.lap - f.u + f.u**3 - source

    def dirichlet(self, x: torch.Tensor, f: Fields) -> torch.Tensor:
        return f.u - self.exact(x)
