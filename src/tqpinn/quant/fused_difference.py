"""The DiffQuant activation identities in one pass (C kernels of tqpinn.quant.fastpath).

``difference(kind, a, b)`` = act(a + b) − act(a) and ``difference_backward`` its gradients, for
the activations in :data:`KINDS`, by the same cancellation-free identities and the same FP32
operations, in the same order, as their PyTorch formulas in tqpinn.nn.activations (the
reference, and the fallback wherever :func:`can_fuse` is False). They differ from those only
through the elementary functions (tanh, sin, cos, cosh from the C library, vectorised where it
has SIMD variants: an ulp or two) and the order of the sum over the K rows in grad_a.

Shapes: b (..., K, F); a (..., 1, F) broadcast over the K rows, or a of b's shape.
"""

from __future__ import annotations

import math

import torch

from tqpinn.quant import fastpath

KINDS = {"tanh": 0, "sin": 1}
"""Activations with a fused kernel, and their codes in kernels.c."""


def can_fuse(kind: str | None, a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the fused kernels handle act = ``kind`` on these operands: FP32 CPU tensors of
    the shapes above, and a kernel build that runs here."""
    return (
        kind in KINDS
        and a.dtype == b.dtype == torch.float32
        and a.device.type == b.device.type == "cpu"
        and b.dim() >= 2
        and a.dim() == b.dim()
        and a.shape[:-2] == b.shape[:-2]
        and a.shape[-1] == b.shape[-1]
        and a.shape[-2] in (1, b.shape[-2])
        and b.numel() > 0
        and fastpath.available()
    )


def _dims(b: torch.Tensor) -> tuple[int, int, int]:
    """(N, K, F) of b (..., K, F)."""
    return math.prod(b.shape[:-2]), b.shape[-2], b.shape[-1]


def difference(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """act(a + b) − act(a), b's shape (see :func:`can_fuse` for when it applies)."""
    a, b = a.contiguous(), b.contiguous()
    out = torch.empty_like(b)
    per_k = a.shape[-2] != 1 or b.shape[-2] == 1
    fastpath.library().tq_difference(
        KINDS[kind], a.data_ptr(), b.data_ptr(), *_dims(b), int(per_k), out.data_ptr()
    )
    return out


def difference_backward(
    kind: str, a: torch.Tensor, b: torch.Tensor, grad: torch.Tensor, need_a: bool, need_b: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The gradients (of a's shape, of b's shape) of act(a + b) − act(a) for the incoming
    ``grad`` (b's shape), each only if needed: recomputes the difference from a and b."""
    a, b, grad = a.contiguous(), b.contiguous(), grad.contiguous()
    grad_a = torch.empty_like(a) if need_a else None
    grad_b = torch.empty_like(b) if need_b else None
    per_k = a.shape[-2] != 1 or b.shape[-2] == 1
    fastpath.library().tq_difference_backward(
        KINDS[kind],
        a.data_ptr(),
        b.data_ptr(),
        grad.data_ptr(),
        *_dims(b),
        int(per_k),
        None if grad_a is None else grad_a.data_ptr(),
        None if grad_b is None else grad_b.data_ptr(),
    )
    return grad_a, grad_b
