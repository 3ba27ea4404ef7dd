"""Multilayer perceptron built from pluggable linear layers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from tqpinn.nn.activations import ACTIVATIONS
from tqpinn.nn.linear import Linear
from tqpinn.nn.streams import StreamBundle, StreamModule, require_finite

LinearFactory = Callable[[int, int, int], StreamModule]
"""(in_features, out_features, layer_index) -> a layer that takes tensors and stream bundles
(a :class:`tqpinn.nn.GemmLayer`)."""

INPUT = "MLP input"
"""How errors name the network's input. NaN or Inf there is bad data, not a divergence of
training (which tqpinn.train.guard handles), so it is an error."""


def dense_factory(in_features: int, out_features: int, index: int) -> StreamModule:
    return Linear(in_features, out_features)


class MLP(StreamModule):
    """sizes[0] -> sizes[1] -> ... -> sizes[-1], activation between layers, linear output.

    Called on a tensor (..., sizes[0]) it returns (..., sizes[-1]); called on a stream bundle it
    returns the output bundle (see :meth:`forward_bundle`).
    """

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

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        require_finite(x, INPUT)
        return self._forward_from(0, x)

    def forward_bundle(
        self, bundle: StreamBundle, stream_layers: int | None = None
    ) -> StreamBundle:
        """Propagate every stream of ``bundle`` through the network.

        stream_layers: carry the streams through the first ``stream_layers`` linear layers
        only, then evaluate the rest on the bundle's plain rows and convert back at the output
        (the DiffQuant "input" ablation); None: through every layer.
        """
        bundle.check_finite(INPUT)
        n_streamed = len(self.layers) if stream_layers is None else stream_layers
        for i, layer in enumerate(self.layers):
            if i == n_streamed:
                return bundle.from_rows(self._forward_from(i, bundle.to_rows()))
            bundle = layer(bundle)
            if i < len(self.layers) - 1:
                bundle = self.activation(bundle)
        return bundle

    def _forward_from(self, first: int, h: torch.Tensor) -> torch.Tensor:
        """The network from the input of layer ``first`` to the end, on plain rows."""
        for layer in self.layers[first:-1]:
            h = self.activation(layer(h))
        return self.layers[-1](h)
