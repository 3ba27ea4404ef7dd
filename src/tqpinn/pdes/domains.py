"""Samplers for common domains, so that a problem's conditions are a few lines.

Each sampler is a small frozen object called as ``sampler(n, generator)`` that returns float32
points (n, columns) on the generator's device. Points are drawn in float64 and rounded once to
float32, so they lie in the closed domain up to that one rounding (relative 2^-24). Printing a
sampler describes its domain (used by ``tqpinn problems``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tqpinn.pdes.base import Sampler


def _uniform(n: int, columns: int, generator: torch.Generator) -> torch.Tensor:
    """U[0, 1) samples (n, columns) in float64."""
    return torch.rand(n, columns, generator=generator, dtype=torch.float64, device=generator.device)


def _directions(n: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform unit vectors (n, dim) in float64: a normalised standard Gaussian is isotropic."""
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64, device=generator.device)
    return z / torch.linalg.vector_norm(z, dim=1, keepdim=True)


@dataclass(frozen=True)
class Cube:
    """Uniform in the cube [low, high]^dim."""

    dim: int
    low: float = 0.0
    high: float = 1.0

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x = self.low + (self.high - self.low) * _uniform(n, self.dim, generator)
        return x.float()

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]^{self.dim}"


@dataclass(frozen=True)
class CubeBoundary:
    """On the boundary of [low, high]^dim: a uniform point of the cube with one coordinate, chosen
    uniformly, set to low or high with equal probability (uniform on the boundary's area)."""

    dim: int
    low: float = 0.0
    high: float = 1.0

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x = self.low + (self.high - self.low) * _uniform(n, self.dim, generator)
        face = torch.randint(self.dim, (n, 1), generator=generator, device=generator.device)
        side = torch.randint(2, (n, 1), generator=generator, device=generator.device)
        wall = self.low + (self.high - self.low) * side.to(torch.float64)
        return x.scatter(1, face, wall).float()

    def __str__(self) -> str:
        return f"∂[{self.low:g}, {self.high:g}]^{self.dim}"


@dataclass(frozen=True)
class Ball:
    """Uniform in the ball ‖x‖ ≤ radius of R^dim: uniform direction times radius · U^(1/dim)
    (the volume inside radius r grows like r^dim)."""

    dim: int
    radius: float = 1.0

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        r = self.radius * _uniform(n, 1, generator) ** (1.0 / self.dim)
        return (r * _directions(n, self.dim, generator)).float()

    def __str__(self) -> str:
        return f"ball ‖x‖ ≤ {self.radius:g} in R^{self.dim}"


@dataclass(frozen=True)
class Sphere:
    """Uniform on the sphere ‖x‖ = radius of R^dim."""

    dim: int
    radius: float = 1.0

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return (self.radius * _directions(n, self.dim, generator)).float()

    def __str__(self) -> str:
        return f"sphere ‖x‖ = {self.radius:g} in R^{self.dim}"


@dataclass(frozen=True)
class SpaceTime:
    """Points of ``space`` with a time column appended, t uniform in [t_min, t_max]."""

    space: Sampler
    t_min: float = 0.0
    t_max: float = 1.0

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x = self.space(n, generator)
        t = self.t_min + (self.t_max - self.t_min) * _uniform(n, 1, generator)
        return torch.cat([x, t.to(x.dtype)], dim=1)

    def __str__(self) -> str:
        return f"{self.space} × t ∈ [{self.t_min:g}, {self.t_max:g}]"


@dataclass(frozen=True)
class AtTime:
    """Points of ``space`` at the fixed time t (an initial or terminal slice)."""

    space: Sampler
    t: float

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        x = self.space(n, generator)
        return torch.cat([x, torch.full_like(x[:, :1], self.t)], dim=1)

    def __str__(self) -> str:
        return f"{self.space} × t = {self.t:g}"
