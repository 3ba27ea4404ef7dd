"""The interface of a PDE problem: conditions with samplers and residuals, and the exact solution."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tqpinn.derivatives.fields import Fields

Sampler = Callable[[int, torch.Generator], torch.Tensor]
"""(n, generator) -> points (n, input_dim)."""
Residual = Callable[[torch.Tensor, Fields], torch.Tensor]
"""(x (n, input_dim), fields of u at x) -> residual (n,), zero where the condition holds."""


@dataclass(frozen=True)
class Condition:
    """One term of the PINN loss: weight · mean(residual²) over ``points`` fresh samples a step."""

    name: str
    needs: frozenset[str]
    sample: Sampler
    residual: Residual
    points: int
    weight: float


class Problem(ABC):
    """A PDE on a domain in R^dim (plus time when ``time_dependent``).

    Input columns are [x_1..x_dim] or [x_1..x_dim, t].
    """

    name: str
    dim: int
    time_dependent: bool = False

    @property
    def input_dim(self) -> int:
        return self.dim + int(self.time_dependent)

    @abstractmethod
    def conditions(self) -> tuple[Condition, ...]:
        """Loss terms, interior first."""

    def exact(self, x: torch.Tensor) -> torch.Tensor | None:
        """Exact solution u(x) (n,), or None when unknown."""
        return None

    test_size: int = 10_000
    """Default number of points of the fixed evaluation set."""

    def test_points(self, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """A fixed, seeded evaluation set (n or ``test_size``, input_dim), float32.

        By default the interior sampler (the first condition) driven by a fresh generator seeded
        with ``seed``: the same seed always gives the same points. Override for another set.
        """
        generator = torch.Generator().manual_seed(seed)
        return self.conditions()[0].sample(self.test_size if n is None else n, generator)

    def network_needs(self, needs: frozenset[str]) -> frozenset[str]:
        """Fields of the raw network that :meth:`output_transform` needs to produce ``needs``."""
        return needs

    def output_transform(self, x: torch.Tensor, f: Fields) -> Fields:
        """Fields of the solution u from fields of the raw network f (hard constraints).

        Identity by default. A problem that builds u = a(x) + b(x)·f(x) maps f, ∇f, Δf, f_t to
        those of u by the product rule, so that every estimator only ever differentiates f.
        """
        return f
