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


def can_fuse_streams(
    kind: str | None, a: torch.Tensor, odd: torch.Tensor, even: torch.Tensor
) -> bool:
    """Whether :func:`streams` handles these: as :func:`can_fuse` for (a, odd), with even of
    odd's shape and dtype."""
    return (
        can_fuse(kind, a, odd)
        and even.shape == odd.shape
        and even.dtype == odd.dtype
        and even.device == odd.device
    )


def streams(
    kind: str, a: torch.Tensor, odd: torch.Tensor, even: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer of difference streams through act in one pass: returns (plus, minus, odd',
    even') with plus = ½(even + odd), minus = ½(even − odd), odd' = D(a, plus) − D(a, minus),
    even' = D(a, plus) + D(a, minus), D(a, b) = act(a + b) − act(a); each of odd's shape."""
    a, odd, even = a.contiguous(), odd.contiguous(), even.contiguous()
    plus, minus, odd_out, even_out = (torch.empty_like(odd) for _ in range(4))
    per_k = a.shape[-2] != 1 or odd.shape[-2] == 1
    fastpath.library().tq_difference_streams(
        KINDS[kind],
        a.data_ptr(),
        odd.data_ptr(),
        even.data_ptr(),
        *_dims(odd),
        int(per_k),
        plus.data_ptr(),
        minus.data_ptr(),
        odd_out.data_ptr(),
        even_out.data_ptr(),
    )
    return plus, minus, odd_out, even_out


def streams_backward(
    kind: str,
    a: torch.Tensor,
    plus: torch.Tensor,
    minus: torch.Tensor,
    grad_odd_out: torch.Tensor,
    grad_even_out: torch.Tensor,
    need_a: bool,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """The gradients (a's shape or None, odd's shape, even's shape) of :func:`streams`' odd'
    and even' for their incoming gradients, from a, plus and minus."""
    a, plus, minus = a.contiguous(), plus.contiguous(), minus.contiguous()
    grad_odd_out, grad_even_out = grad_odd_out.contiguous(), grad_even_out.contiguous()
    grad_a = torch.empty_like(a) if need_a else None
    grad_odd, grad_even = torch.empty_like(plus), torch.empty_like(plus)
    per_k = a.shape[-2] != 1 or plus.shape[-2] == 1
    fastpath.library().tq_difference_streams_backward(
        KINDS[kind],
        a.data_ptr(),
        plus.data_ptr(),
        minus.data_ptr(),
        grad_odd_out.data_ptr(),
        grad_even_out.data_ptr(),
        *_dims(plus),
        int(per_k),
        None if grad_a is None else grad_a.data_ptr(),
        grad_odd.data_ptr(),
        grad_even.data_ptr(),
    )
    return grad_a, grad_odd, grad_even
