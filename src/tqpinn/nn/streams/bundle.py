"""The stream bundle protocol: a value stream and derivative streams carried together.

A forward-only estimator hands the network a bundle instead of a tensor. Every bundle kind maps
through a linear layer the same way (the value stream gets the full map with bias, every other
stream the bias-free map, each as its own GEMM operand with its own block scales); what differs
is how an activation maps it, which the bundle decides by asking the activation for the
primitives its rule needs, and how it becomes plain rows and back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

import torch

if TYPE_CHECKING:
    from tqpinn.nn.activations import Activation

Product = Callable[[torch.Tensor], torch.Tensor]
"""h ↦ h Wᵀ of a layer, without bias: (..., in_features) -> (..., out_features)."""


def require_finite(x: torch.Tensor, what: str) -> None:
    """A ValueError naming ``what`` when x holds NaN or Inf (one reduction and synchronisation)."""
    finite = torch.isfinite(x)
    if not finite.all():
        raise ValueError(
            f"{what} of shape {tuple(x.shape)} holds {int((~finite).sum())} NaN or Inf "
            "values; the network's inputs must be finite"
        )


class StreamBundle(ABC):
    """The activations of one layer as streams: the value h first, derivative streams after.

    Subclasses hold the streams (each (..., F), the last dimension the features) and give the
    activation rule and the row layout; the linear rule is shared.
    """

    @abstractmethod
    def streams(self) -> tuple[torch.Tensor, ...]:
        """Every stream, the value stream first."""

    @abstractmethod
    def with_streams(self, *streams: torch.Tensor) -> Self:
        """A bundle of this kind and layout holding ``streams`` (in :meth:`streams` order)."""

    @abstractmethod
    def activate(self, activation: Activation) -> Self:
        """The bundle after the element-wise ``activation``, by the primitives its rule needs."""

    @abstractmethod
    def to_rows(self) -> torch.Tensor:
        """The activations as plain rows (R, F), for layers that run on values."""

    @abstractmethod
    def from_rows(self, rows: torch.Tensor) -> Self:
        """The inverse of :meth:`to_rows` for rows (R, F') of this bundle's layout."""

    @property
    def value(self) -> torch.Tensor:
        """The value stream h(x), (N, F)."""
        return self.streams()[0]

    def linear(self, product: Product, bias: torch.Tensor | None) -> Self:
        """The bundle after h ↦ h Wᵀ + b: ``product`` once per stream, value stream first (its
        own GEMM operand each); the bias on the value stream only, since a derivative of a
        linear map has no constant term."""
        value, *derivatives = self.streams()
        mapped = product(value)
        mapped = mapped if bias is None else mapped + bias
        return self.with_streams(mapped, *(product(d) for d in derivatives))

    def check_finite(self, what: str) -> None:
        """A ValueError naming ``what`` when any stream holds NaN or Inf."""
        for stream in self.streams():
            require_finite(stream, what)
