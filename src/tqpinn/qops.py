"""The single GEMM entry point of every tqpinn layer, and the GEMM trace.

Every matrix multiply of a model (dense layers, tensor-train contractions) calls :func:`gemm`
(or :func:`chained_gemm`, the same GEMM as a link of a chain), so that quantization and tracing
see all of them and layers never special-case a precision.

One GEMM Y = A·Bᵀ, A (M, K), B (N, K), implies three products in training:
    forward  Y  = A · Bᵀ        (M x K) @ (K x N)
    dgrad    dA = dY · B        (M x N) @ (N x K)
    wgrad    dB = dYᵀ · A       (N x M) @ (M x K)
Each product is reported to the active observers as a :class:`GemmEvent`, and so is a forward
product that backward runs again (phase "recompute") instead of storing its output.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from tqpinn.quant import fastpath, store, tf32
from tqpinn.quant.spec import Operand, QuantSpec


@dataclass(frozen=True)
class GemmEvent:
    """One executed product (m x k) @ (k x n) and the formats of its two operands.

    phase: "forward", "dgrad", "wgrad", or "recompute" (a forward product run again in backward
    instead of storing its output, see :func:`chained_gemm`). a_format / b_format: format names
    ("fp32", "smx_int8", "mx_int12", ...); a_bits / b_bits: element bits; block: the block shape (rows,
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
    _check_operands(x, w)
    if spec is not None:
        return quantized_gemm(x, w, spec)
    if not _OBSERVERS:
        return x @ w.T
    return _TracedGemm.apply(x, w, "forward")


def _check_operands(x: object, w: object) -> None:
    """Clear errors for operands that do not form x (..., K) @ w (N, K)ᵀ; metadata only."""
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"gemm: {name} must be a floating-point tensor, got {got}")
    if w.ndim != 2:
        raise ValueError(f"gemm: w must be a matrix (N, K), got shape {tuple(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"gemm: x of shape {tuple(x.shape)} does not fit w of shape {tuple(w.shape)}; "
            f"x must be (..., {w.shape[1]})"
        )
    if x.dtype != w.dtype or x.device != w.device:
        raise TypeError(
            f"gemm: x is {x.dtype} on {x.device} but w is {w.dtype} on {w.device}; "
            "both must have the same dtype and device"
        )


def _emit_quant(phase: str, m: int, n: int, k: int, a_op: Operand, b_op: Operand) -> None:
    if not _OBSERVERS:
        return
    fmt = a_op.fmt or b_op.fmt
    a_bits, b_bits = (32 if op.fmt is None else op.fmt.bits for op in (a_op, b_op))
    block = None if fmt is None else fmt.block
    emit(GemmEvent(phase, m, n, k, a_op.name, b_op.name, a_bits, b_bits, block))


def _keep(fwd: Operand, back: Operand) -> store.Keep:
    """Keep the forward quantization itself when it already is the backward operand (square
    blocks, same format and rounding); otherwise a re-quantization in backward orientation."""
    if back == fwd and (fwd.fmt is None or fwd.fmt.square):
        return store.Keep(fwd, transposed=False)
    return store.Keep(back, transposed=True)


def _dgrad_spec(spec: QuantSpec) -> QuantSpec:
    return spec.with_roles(fwd_input=spec.dgrad_grad_output, fwd_weight=spec.dgrad_weight)


def _wgrad_spec(spec: QuantSpec) -> QuantSpec:
    return spec.with_roles(fwd_input=spec.wgrad_grad_output, fwd_weight=spec.wgrad_input)


def _product(a: store.GemmOperand, b: store.GemmOperand, spec: QuantSpec) -> torch.Tensor:
    """a (M, K) · b (N, K)ᵀ of quantized operands, FP32 accumulation.

    With ``spec.fast`` and integer block operands of at most 8 bits, the exact bfloat16 kernel:
    the same products, FP32 sums in another order (tqpinn.quant.fastpath). With ``spec.tf32``
    on CUDA and both operands exact in TF32, the TF32 tensor cores: the same again
    (tqpinn.quant.tf32).
    """
    if spec.fast:
        a_bf16, b_bf16 = store.bf16_operand(a), store.bf16_operand(b)
        if a_bf16 is not None and b_bf16 is not None:
            return fastpath.gemm_bf16(a_bf16, b_bf16)
    a_values, b_values = store.values(a), store.values(b)
    if spec.tf32 and a_values.is_cuda and tf32.exact_operands(a, b):
        with tf32.cuda_tf32_matmuls():
            return a_values @ b_values.T
    return a_values @ b_values.T


class _QuantGemm(torch.autograd.Function):
    """Fully quantized A·Bᵀ, A (..., K) the input, B (N, K) the weight:

        forward  Y  = Q[fwd.input](A)          · Q[fwd.weight](B)ᵀ
        dgrad    dA = Q[dgrad.grad_output](dY) · Q[dgrad.weight](Bᵀ)ᵀ
        wgrad    dB = Q[wgrad.grad_output](dYᵀ) · Q[wgrad.input](Aᵀ)ᵀ

    A and B are saved already quantized for their backward products (see
    :func:`quantized_gemm`), so backward reads them without re-quantizing. With
    ``create_graph=True`` the backward products are themselves this Function (quantized by
    the gradient roles, differentiated straight through Q), so double backward works.
    """

    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        b: torch.Tensor,
        spec: QuantSpec,
        phase: str,
        kept: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        gen = spec.generator
        a_q = store.operand(a, spec.fwd_input, False, gen)
        b_q = store.operand(b, spec.fwd_weight, False, gen)
        _emit_quant(
            phase, a_q.shape[0], b_q.shape[0], a_q.shape[1], spec.fwd_input, spec.fwd_weight
        )
        # Each operand is kept only for the product that reads it: A for dB, B for dA.
        need_a, need_b = ctx.needs_input_grad[:2]
        ctx.save_for_backward(a if need_b else None, b if need_a else None)
        ctx.a_shape = a.shape
        ctx.spec = spec
        ctx.kept = kept  # filled with the stored operands once this returns
        return _product(a_q, b_q, spec).reshape(*a.shape[:-1], b.shape[0])

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        spec: QuantSpec = ctx.spec
        g_m = store.as_matrix(grad_y)
        need_a, need_b = ctx.needs_input_grad[:2]
        grad_a = grad_b = None
        if torch.is_grad_enabled():  # create_graph: the backward products get a graph too
            a_kept, b_m = ctx.saved_tensors  # on the grids of wgrad.input / dgrad.weight
            a_m = None if a_kept is None else store.as_matrix(a_kept)
            if need_a:
                grad_a = quantized_gemm(g_m, b_m.T, _dgrad_spec(spec), "dgrad")
            if need_b:
                grad_b = quantized_gemm(g_m.T, a_m.T, _wgrad_spec(spec), "wgrad")
        else:
            a_t, b_t = _kept_transposed(ctx)
            gen = spec.generator
            dg_op, wg_op = spec.dgrad_grad_output, spec.wgrad_grad_output
            m, n, k = g_m.shape[0], g_m.shape[1], ctx.a_shape[-1]
            g_dgrad = None
            if need_a:
                g_dgrad = store.grid_values(grad_y, dg_op, False, gen)
                _emit_quant("dgrad", m, k, n, dg_op, spec.dgrad_weight)
                grad_a = _product(g_dgrad, b_t, spec)
            if need_b:
                if g_dgrad is not None and not _keep(dg_op, wg_op).transposed:
                    g_wgrad = store.transpose(g_dgrad)  # square: Q(dYᵀ) = Q(dY)ᵀ, quantized once
                else:
                    g_wgrad = store.grid_values(grad_y, wg_op, True, gen)
                _emit_quant("wgrad", n, k, m, wg_op, spec.wgrad_input)
                grad_b = _product(g_wgrad, a_t, spec)
        if grad_a is not None:
            grad_a = grad_a.reshape(ctx.a_shape)
        return grad_a, grad_b, None, None, None


def _kept_transposed(ctx: Any) -> tuple[store.GemmOperand | None, store.GemmOperand | None]:
    """Aᵀ and Bᵀ as their backward products' operands: straight from the packed objects the
    saved-tensor hooks stored (no dequantization pass), or, if those were already consumed
    (a second backward with retain_graph), from the saved tensors, loaded on their grids."""
    kept, ctx.kept = ctx.kept, None
    if kept is not None and len(kept) == sum(ctx.needs_input_grad[:2]):
        return (
            store.transposed_operand(kept["a"]) if "a" in kept else None,
            store.transposed_operand(kept["b"]) if "b" in kept else None,
        )
    spec: QuantSpec = ctx.spec
    a, b = ctx.saved_tensors
    ops = (spec.wgrad_input, spec.dgrad_weight)
    return tuple(
        None if t is None else _on_grid(store.as_matrix(t).T, op)
        for t, op in zip((a, b), ops, strict=True)
    )


def _on_grid(values: torch.Tensor, op: Operand) -> store.GemmOperand:
    """A loaded saved operand: already on op's grid (or FP32)."""
    return values if op.fmt is None else store.OnGrid(values, op.fmt)


def quantized_gemm(
    x: torch.Tensor, w: torch.Tensor, spec: QuantSpec, phase: str = "forward"
) -> torch.Tensor:
    """``x @ w.T`` with every product quantized by ``spec`` (see :class:`_QuantGemm`).

    x and w are saved for backward through saved-tensor hooks that store each as the packed
    operand its backward product needs: with square blocks and equal roles that is the forward
    quantization itself (one copy); with 1 x n blocks a second, transposed quantization from the
    high-precision tensor, as MX training keeps.
    """
    return _kept_gemm(x, w, spec, phase, None)[0]


def _kept_gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    spec: QuantSpec,
    phase: str,
    recompute_x: store.Recompute | None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """:func:`quantized_gemm`, x rebuilt in backward by ``recompute_x`` (if given) instead of
    stored; also returns what the GEMM keeps ("a": x, "b": w, each only if kept)."""
    keep_x = _keep(spec.fwd_input, spec.wgrad_input)
    keep_w = _keep(spec.fwd_weight, spec.dgrad_weight)
    with store.gemm_storage(x, w, keep_x, keep_w, spec.generator, recompute_x) as kept:
        return _QuantGemm.apply(x, w, spec, phase, kept), kept


def chained_gemm(
    x: torch.Tensor,
    w: torch.Tensor,
    spec: QuantSpec | None,
    recompute_x: store.Recompute | None = None,
) -> tuple[torch.Tensor, store.Recompute | None]:
    """``gemm(x, w, spec)`` as one link of a chain of GEMMs whose intermediate inputs are
    recomputed in backward rather than stored (the contractions of a TT layer).

    recompute_x: gives x again, bit for bit, from what earlier links keep; x is then not stored
    (where its packing is deterministic, see :func:`tqpinn.quant.store.recomputable`). Returns
    the output y (..., N) and a recompute of y from this GEMM's kept forward quantization of x
    and from w, which backward runs once as a product of phase "recompute"; None where the GEMM
    keeps no forward operand of x (FP32, an input re-quantized for its weight gradient, or w
    without a gradient) or packing w is not deterministic. w must not change in place between
    forward and backward (a parameter changes only in the optimizer step, after both).
    """
    if spec is None:
        return gemm(x, w), None
    _check_operands(x, w)
    y, kept = _kept_gemm(x, w, spec, "forward", recompute_x)
    x_kept = kept.get("a")
    w_op = spec.fwd_weight
    if not isinstance(x_kept, store.Kept) or x_kept.transposed:
        return y, None
    if w_op.fmt is not None and not store.recomputable(w_op):
        return y, None
    x_shape, version = x.shape, w._version

    def again() -> torch.Tensor:
        if w._version != version:
            raise RuntimeError("a chained GEMM's weight was modified in place before backward")
        x_q = x_kept.matrix()
        w_q = store.operand(w, w_op, False, spec.generator)
        _emit_quant("recompute", x_q.shape[0], w.shape[0], x_q.shape[1], spec.fwd_input, w_op)
        return _product(x_q, w_q, spec).reshape(*x_shape[:-1], w.shape[0])

    return y, again
