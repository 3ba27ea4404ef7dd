"""Multilayer perceptron built from pluggable linear layers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from tqpinn.nn.activations import ACTIVATIONS
from tqpinn.nn.linear import Linear
from tqpinn.nn.streams import Streams

LinearFactory = Callable[[int, int, int], nn.Module]
"""(in_features, out_features, layer_index) -> a layer with ``forward`` and ``forward_streams``."""


def dense_factory(in_features: int, out_features: int, index: int) -> nn.Module:
    return Linear(in_features, out_features)


def _check_finite(*inputs: torch.Tensor) -> None:
    """Inputs are points: NaN or Inf there is bad data, not a divergence of training (which
    tqpinn.train.guard handles), so it is an error. One reduction and synchronisation each."""
    for x in inputs:
        finite = torch.isfinite(x)
        if not finite.all():
            raise ValueError(
                f"MLP input of shape {tuple(x.shape)} holds {int((~finite).sum())} NaN or Inf "
                "values; the network's inputs must be finite"
            )


class MLP(nn.Module):
    """sizes[0] -> sizes[1] -> ... -> sizes[-1], activation between layers, linear output."""

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "tanh",
        linear_factory: LinearFactory = dense_factory,
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}"
            )
        self.sizes = tuple(sizes)
        self.layers = nn.ModuleList(
            linear_factory(a, b, i) for i, (a, b) in enumerate(itertools.pairwise(sizes))
        )
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., sizes[0]) -> (..., sizes[-1])."""
        _check_finite(x)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)

    def forward_streams(self, s: Streams, stream_layers: int | None = None) -> Streams:
        """Propagate centre values and antithetic differences (see :class:`Streams`).

        stream_layers: carry the differences through the first ``stream_layers`` linear layers
        only, then evaluate the rest on the perturbed values and take differences at the output
        (the DiffQuant "input" ablation); None: through every layer.
        """
        _check_finite(s.base, s.odd, s.even)
        n_streamed = len(self.layers) if stream_layers is None else stream_layers
        for i, layer in enumerate(self.layers):
            if i == n_streamed:
                return Streams.from_values(self._forward_from(i, s.to_values()), s.odd.shape[1])
            s = layer.forward_streams(s)
            if i < len(self.layers) - 1:
                s = self.activation.forward_streams(s)
        return s

    def _forward_from(self, first: int, h: torch.Tensor) -> torch.Tensor:
        """The network from the input of layer ``first`` (an activation output) to the end."""
        for layer in self.layers[first:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)
