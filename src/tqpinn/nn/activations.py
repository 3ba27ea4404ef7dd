"""Activations that map a value and, for DiffQuant, a perturbation difference.

``difference(a, b)`` returns act(a + b) − act(a) by an identity that has no cancellation, so that
a tiny difference b keeps its relative precision however large a is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from tqpinn.nn.streams import Streams


class Activation(nn.Module, ABC):
    """Element-wise activation with a cancellation-free difference rule."""

    @abstractmethod
    def forward(self, a: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """act(a + b) − act(a), computed without subtracting two nearby values."""

    def forward_streams(self, s: Streams) -> Streams:
        a = s.base.unsqueeze(-2)  # (N, 1, F) broadcasts over the K perturbations
        plus, minus = s.plus_minus()
        return Streams.from_plus_minus(
            self.forward(s.base), self.difference(a, plus), self.difference(a, minus)
        )


class Tanh(Activation):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a)

    def difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # tanh(a+b) − tanh(a) = tanh(b) sech²(a) / (1 + tanh a · tanh b); sech² rather than
        # 1 − tanh²a, which cancels for large |a|.
        ta, tb = torch.tanh(a), torch.tanh(b)
        return tb / (torch.cosh(a).square() * (1.0 + ta * tb))


class Sin(Activation):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sin(a)

    def difference(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # sin(a+b) − sin(a) = 2 cos(a + b/2) sin(b/2)
        return 2.0 * torch.cos(a + 0.5 * b) * torch.sin(0.5 * b)


ACTIVATIONS: dict[str, type[Activation]] = {"tanh": Tanh, "sin": Sin}
