"""Perturbation streams: how a layer sees the Stein estimator's antithetic pairs.

The Stein estimator needs, for N centre points x and K perturbations δ per point, the network's
value at x and its differences at x ± δ. Carrying the differences themselves through the network
(rather than the perturbed values) is what lets DiffQuant quantize each with its own block scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Streams:
    """Activations of one layer for centre points and their antithetic perturbations.

    base: h(x), shape (N, F).
    odd:  h(x+δ) − h(x−δ), shape (N, K, F).
    even: h(x+δ) + h(x−δ) − 2 h(x), shape (N, K, F).
    """

    base: torch.Tensor
    odd: torch.Tensor
    even: torch.Tensor

    @classmethod
    def from_input(cls, x: torch.Tensor, delta: torch.Tensor) -> Streams:
        """Streams of the identity map: x (N, D), delta (N, K, D)."""
        return cls(base=x, odd=2.0 * delta, even=torch.zeros_like(delta))

    def plus_minus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-sided differences h(x+δ) − h(x) and h(x−δ) − h(x), each (N, K, F)."""
        return 0.5 * (self.even + self.odd), 0.5 * (self.even - self.odd)

    @classmethod
    def from_plus_minus(
        cls, base: torch.Tensor, plus: torch.Tensor, minus: torch.Tensor
    ) -> Streams:
        return cls(base=base, odd=plus - minus, even=plus + minus)

    def to_values(self) -> torch.Tensor:
        """The activations themselves as rows [h(x); h(x+δ); h(x−δ)]: (N + 2·N·K, F)."""
        plus, minus = self.plus_minus()
        base = self.base.unsqueeze(-2)
        n, k, f = self.odd.shape
        return torch.cat(
            [self.base, (base + plus).reshape(n * k, f), (base + minus).reshape(n * k, f)]
        )

    @classmethod
    def from_values(cls, rows: torch.Tensor, pairs: int) -> Streams:
        """Inverse of :meth:`to_values` by subtraction: rows (N + 2·N·K, F), K = ``pairs``."""
        n = rows.shape[0] // (1 + 2 * pairs)
        base = rows[:n]
        h_plus, h_minus = rows[n:].reshape(2, n, pairs, -1)
        return cls.from_plus_minus(base, h_plus - base[:, None], h_minus - base[:, None])
