"""Dense layer y = x Wᵀ + b whose matmul goes through :func:`tqpinn.qops.gemm`."""

from __future__ import annotations

import math

import torch
from torch import nn

from tqpinn.nn.layer import GemmLayer, check_input
from tqpinn.nn.streams import Streams
from tqpinn.qops import gemm


class Linear(GemmLayer):
    """Dense layer; weight (out, in), PyTorch's default initialisation."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(self, x, self.in_features)
        y = gemm(x, self.weight, self.quant)
        return y if self.bias is None else y + self.bias

    def forward_streams(self, s: Streams) -> Streams:
        # A linear map is exact on differences; the bias cancels in them.
        w = self.weight
        return Streams(
            self.forward(s.base), gemm(s.odd, w, self.quant), gemm(s.even, w, self.quant)
        )

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
