"""Dense layer y = x Wᵀ + b whose matmul goes through :func:`tqpinn.qops.gemm`."""

from __future__ import annotations

import math

import torch
from torch import nn

from tqpinn.nn.layer import GemmLayer, check_input
from tqpinn.nn.streams import Product
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

    def product(self) -> Product:
        return self.matmul

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_features) -> x Wᵀ (..., out_features), without bias."""
        check_input(self, x, self.in_features)
        return gemm(x, self.weight, self.quant)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
