"""The single GEMM entry point of every tqpinn layer.

Every matrix multiply of a model (dense layers, tensor-train contractions) calls :func:`gemm`,
so that quantization and tracing see all of them and layers never special-case a precision.
"""

from __future__ import annotations

import torch


def gemm(x: torch.Tensor, w: torch.Tensor, spec: object | None = None) -> torch.Tensor:
    """Return ``x @ w.T``: x (..., K), w (N, K) -> (..., N); ``spec`` None means FP32."""
    return x @ w.T
