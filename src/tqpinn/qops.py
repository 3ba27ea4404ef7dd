"""The single GEMM entry point of every tqpinn layer, and the GEMM trace.

Every matrix multiply of a model (dense layers, tensor-train contractions) calls :func:`gemm`,
so that quantization and tracing see all of them and layers never special-case a precision.

One GEMM Y = A·Bᵀ, A (M, K), B (N, K), implies three products in training:
    forward  Y  = A · Bᵀ        (M x K) @ (K x N)
    dgrad    dA = dY · B        (M x N) @ (N x K)
    wgrad    dB = dYᵀ · A       (N x M) @ (M x K)
Each product is reported to the active observers as a :class:`GemmEvent`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from tqpinn.quant.spec import QuantSpec


@dataclass(frozen=True)
class GemmEvent:
    """One executed product (m x k) @ (k x n) and the formats of its two operands.

    phase: "forward", "dgrad" or "wgrad". a_format / b_format: format names ("fp32",
    "smx_int8", "mx_int12", ...); a_bits / b_bits: element bits; block: the block shape (rows,
    cols) of a block format as configured (MX: (1, 32) means 32 along the reduction axis), None
    for unblocked operands.
    """

    phase: str
    m: int
    n: int
    k: int
    a_format: str
    b_format: str
    a_bits: int
    b_bits: int
    block: tuple[int, int] | None


_OBSERVERS: list[Callable[[GemmEvent], None]] = []

_DTYPE_NAMES = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16"}


@contextlib.contextmanager
def observe_gemms(callback: Callable[[GemmEvent], None]) -> Iterator[None]:
    """While active, every GEMM run through this module (any phase, any precision) calls
    ``callback(event)``. Observers nest; each active one sees every event."""
    _OBSERVERS.append(callback)
    try:
        yield
    finally:
        _OBSERVERS.remove(callback)


def observing() -> bool:
    """True while at least one observer is active."""
    return bool(_OBSERVERS)


def emit(event: GemmEvent) -> None:
    """Report ``event`` to every active observer (used by the quantized GEMM functions too)."""
    for callback in tuple(_OBSERVERS):
        callback(event)


def _emit_plain(phase: str, a: torch.Tensor, b: torch.Tensor) -> None:
    name = _DTYPE_NAMES.get(a.dtype, str(a.dtype).removeprefix("torch."))
    bits = a.element_size() * 8
    k = a.shape[-1]
    emit(GemmEvent(phase, math.prod(a.shape[:-1]), b.shape[0], k, name, name, bits, bits, None))


class _TracedGemm(torch.autograd.Function):
    """A·Bᵀ in the inputs' own precision, reporting its products; used while observing.

    Its backward calls this Function again, so that with ``create_graph=True`` the backward
    GEMMs are themselves differentiable and traced (double backward for autodiff Laplacians).
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, phase: str) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        _emit_plain(phase, a, b)
        return a @ b.T

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, b = ctx.saved_tensors
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = _TracedGemm.apply(grad_y, b.T, "dgrad")
        if ctx.needs_input_grad[1]:
            dy2, a2 = grad_y.reshape(-1, grad_y.shape[-1]), a.reshape(-1, a.shape[-1])
            grad_b = _TracedGemm.apply(dy2.T, a2.T, "wgrad")
        return grad_a, grad_b, None


def gemm(x: torch.Tensor, w: torch.Tensor, spec: QuantSpec | None = None) -> torch.Tensor:
    """Return ``x @ w.T``: x (..., K), w (N, K) -> (..., N).

    ``spec`` None means FP32 (the inputs' precision): a plain matmul unless an observer is
    active, so that the unobserved FP32 path costs exactly what a matmul costs.
    """
    if spec is not None:
        raise NotImplementedError("quantized GEMMs land with tqpinn.quant (issue 3)")
    if not _OBSERVERS:
        return x @ w.T
    return _TracedGemm.apply(x, w, "forward")
