"""Taylor streams: how a layer sees exact forward-mode derivatives along input coordinates.

For N points x and C input columns i_1..i_C, a layer's activations h carry their first-order
terms ∂h/∂x_i and one collapsed second-order term Σ_{i spatial} ∂²h/∂x_i² (the Laplacian of h).
A linear map applies to every derivative stream without bias; an element-wise σ maps a = (value,
∂a, Σ∂²a) by the chain rule:

    σ(a),   σ'(a)·∂a/∂x_i,   σ''(a)·Σ_{i spatial} (∂a/∂x_i)² + σ'(a)·Σ_{i spatial} ∂²a/∂x_i².

Each stream is its own GEMM operand with its own block scales, so a derivative never shares a
scale with the (much larger or smaller) value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tqpinn.nn.streams.bundle import StreamBundle

if TYPE_CHECKING:
    from tqpinn.nn.activations import Activation


@dataclass(frozen=True)
class TaylorStreams(StreamBundle):
    """Activations of one layer with their derivatives along C input columns.

    value_stream: h(x), shape (N, F).
    first: ∂h/∂x_i for the C columns, shape (N, C, F); the first ``n_laplacian`` of them are the
        spatial columns whose second derivatives ``second`` sums.
    second: Σ_{i < n_laplacian} ∂²h/∂x_i², shape (N, F); None when no Laplacian is carried.
    """

    value_stream: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor | None
    n_laplacian: int

    @classmethod
    def from_input(cls, x: torch.Tensor, columns: list[int], n_laplacian: int) -> TaylorStreams:
        """Streams of the identity map at x (N, D): ∂x/∂x_i = e_i for each of ``columns``, zero
        second derivatives. The first ``n_laplacian`` columns enter the collapsed term (0: none
        carried)."""
        n, dims = x.shape
        axes = torch.eye(dims, dtype=x.dtype, device=x.device)[columns]  # (C, D)
        first = axes.expand(n, *axes.shape).contiguous()
        second = torch.zeros_like(x) if n_laplacian else None
        return cls(x, first, second, n_laplacian)

    def streams(self) -> tuple[torch.Tensor, ...]:
        if self.second is None:
            return self.value_stream, self.first
        return self.value_stream, self.first, self.second

    def with_streams(self, *streams: torch.Tensor) -> TaylorStreams:
        value, first, *second = streams
        return TaylorStreams(value, first, second[0] if second else None, self.n_laplacian)

    def activate(self, activation: Activation) -> TaylorStreams:
        value, slope, curvature = activation.taylor(self.value_stream)
        first = slope.unsqueeze(-2) * self.first
        if self.second is None:
            return TaylorStreams(value, first, None, self.n_laplacian)
        squares = self.first[..., : self.n_laplacian, :].square().sum(dim=-2)
        second = curvature * squares + slope * self.second
        return TaylorStreams(value, first, second, self.n_laplacian)

    def to_rows(self) -> torch.Tensor:
        raise TypeError(
            "Taylor streams hold derivatives, not activations at points, and have no form as "
            "plain rows; carry them through every layer (stream_layers=None)"
        )

    def from_rows(self, rows: torch.Tensor) -> TaylorStreams:
        raise TypeError("Taylor streams have no form as plain rows (see to_rows)")
