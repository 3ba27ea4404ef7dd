"""Difference streams: how a layer sees the Stein estimator's antithetic pairs.

The Stein estimator needs, for N centre points x and K perturbations δ per point, the network's
value at x and its differences at x ± δ. Carrying the differences themselves through the network
(rather than the perturbed values) is what lets DiffQuant quantize each with its own block scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from tqpinn.nn.streams.bundle import Product, StreamBundle

if TYPE_CHECKING:
    from tqpinn.nn.activations import Activation


@dataclass(frozen=True)
class DifferenceStreams(StreamBundle):
    """Activations of one layer for centre points and their antithetic perturbations.

    base: h(x), shape (N, F).
    odd:  h(x+δ) − h(x−δ), shape (N, K, F).
    even: h(x+δ) + h(x−δ) − 2 h(x), shape (N, K, F).
    even_zero: even is exactly zero, as at the input and after a linear map of it (the first
        activation then keeps one one-sided difference for backward instead of two).
    """

    base: torch.Tensor
    odd: torch.Tensor
    even: torch.Tensor
    even_zero: bool = False

    @classmethod
    def from_input(cls, x: torch.Tensor, delta: torch.Tensor) -> DifferenceStreams:
        """Streams of the identity map: x (N, D), delta (N, K, D)."""
        return cls(base=x, odd=2.0 * delta, even=torch.zeros_like(delta), even_zero=True)

    @classmethod
    def from_plus_minus(
        cls, base: torch.Tensor, plus: torch.Tensor, minus: torch.Tensor
    ) -> DifferenceStreams:
        return cls(base=base, odd=plus - minus, even=plus + minus)

    def plus_minus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-sided differences h(x+δ) − h(x) and h(x−δ) − h(x), each (N, K, F)."""
        return 0.5 * (self.even + self.odd), 0.5 * (self.even - self.odd)

    def streams(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.base, self.odd, self.even

    def with_streams(self, *streams: torch.Tensor) -> DifferenceStreams:
        return DifferenceStreams(*streams)

    def linear(self, product: Product, bias: torch.Tensor | None) -> DifferenceStreams:
        # The bias-free map of a zero even stream is zero.
        return replace(super().linear(product, bias), even_zero=self.even_zero)

    def activate(self, activation: Activation) -> DifferenceStreams:
        # act(a ± δa) − act(a) by the activation's cancellation-free difference identity.
        a = self.base.unsqueeze(-2)  # (N, 1, F) broadcasts over the K perturbations
        base = activation.evaluate(self.base)
        streams = activation.difference_streams(a, self.odd, self.even, self.even_zero)
        return DifferenceStreams(base, *streams)

    def to_rows(self) -> torch.Tensor:
        """The activations themselves as rows [h(x); h(x+δ); h(x−δ)]: (N + 2·N·K, F)."""
        plus, minus = self.plus_minus()
        base = self.base.unsqueeze(-2)
        n, k, f = self.odd.shape
        return torch.cat(
            [self.base, (base + plus).reshape(n * k, f), (base + minus).reshape(n * k, f)]
        )

    def from_rows(self, rows: torch.Tensor) -> DifferenceStreams:
        """Inverse of :meth:`to_rows` by subtraction: rows (N + 2·N·K, F'), K as in this bundle."""
        pairs = self.odd.shape[1]
        n = rows.shape[0] // (1 + 2 * pairs)
        base = rows[:n]
        h_plus, h_minus = rows[n:].reshape(2, n, pairs, -1)
        return DifferenceStreams.from_plus_minus(
            base, h_plus - base[:, None], h_minus - base[:, None]
        )
