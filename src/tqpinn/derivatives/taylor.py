"""Exact derivatives by forward-mode Taylor streams: no back-propagation through the inputs.

The network is called on a :class:`~tqpinn.nn.streams.TaylorStreams` bundle that carries, through
every layer, the value, its first derivatives along the input columns a condition needs and
(for Δu) one collapsed second-order term. Rows per point: 1 + C + 1 with C the columns (d for
∇u or Δu, plus 1 for u_t), against Stein's 2K + 1. Exact to rounding, like autodiff. Parameters
get ordinary first-order back-propagation through this forward pass. Under a quantized spec
each stream is its own GEMM operand with its own block scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from tqpinn.derivatives.base import Estimator, Network, scalar_output
from tqpinn.derivatives.columns import derivative_columns, split_first_order
from tqpinn.derivatives.fields import LAP, Fields, U
from tqpinn.derivatives.streamed import require_stream_module
from tqpinn.nn.streams import TaylorStreams


@dataclass(frozen=True)
class Taylor(Estimator):
    """u, ∇u, Δu, u_t by forward-mode Taylor streams; only the requested fields are carried."""

    name: ClassVar[str] = "taylor"

    def estimated_fields(
        self,
        net: Network,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None,
    ) -> Fields:
        n, dims = x.shape
        net = require_stream_module(net, "the taylor estimator")
        columns = derivative_columns(needs, n_space, dims)
        n_laplacian = n_space if LAP in needs else 0
        out = net(TaylorStreams.from_input(x, columns, n_laplacian))
        grad, dt = split_first_order(out.first.reshape(n, len(columns)), needs, n_space)
        return Fields(
            u=scalar_output(out.value, n) if U in needs else None,
            grad=grad,
            lap=scalar_output(out.second, n) if LAP in needs else None,
            dt=dt,
        )
