"""The reference block quantizer compiled by ``torch.compile``: fused kernels for CUDA tensors.

On a CUDA tensor the reference (:func:`tqpinn.formats.quantize`, :func:`~tqpinn.formats.pack`,
:func:`~tqpinn.formats.unpack`) runs about ten element-wise passes. Here the same Python
functions are traced by Dynamo and compiled by Inductor (Triton kernels on CUDA, C++ on the
CPU), so the block amax, the power-of-two scale, the rounding, the clamp and the packing fuse
into a few kernels.

Arithmetic semantics: bit for bit the reference. Every step is exact or correctly rounded (the
exponent read by ``frexp``, a division by a power of two, round half to even, a clamp, casts of
integers or to FP8), so a compiler that fuses or reorders them cannot change a value, provided
it rounds each operation as IEEE does (for Triton: :data:`EXACT_TRITON`);
tests/test_quant_compiled.py checks it through Inductor's C++ backend on every named format and
on the device where CUDA exists. Only nearest rounding is compiled: stochastic rounding draws
its numbers from a generator, and a compiled RNG draws other numbers.

One compiled function per format and per operation, compiled on first use; the tensor's sizes
are dynamic, so one compilation serves every matrix size with the same padding pattern (Dynamo
guards on whether a partial edge block exists and on dimensions smaller than a block, so a
format meets a handful of variants, each compiled once).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types
from collections.abc import Callable

import torch

from tqpinn.formats import BlockFormat, PackedTensor, pack, quantize, unpack

ENV_DISABLE = "TQPINN_NO_COMPILE"
"""Set to 1 to keep CUDA tensors on the PyTorch reference quantizer."""

RECOMPILE_LIMIT = 32
"""Compiled variants Dynamo keeps per format and operation (its default, 8, is counted per code
object): padding patterns, orientations, dimensions below a block and ranks, each compiled once.
Past the limit the call raises (``fullgraph``) rather than silently running uncompiled."""


EXACT_TRITON = {
    # Triton's x / y is div.full.f32 (approximate, subnormal operands flushed to zero); eager
    # CUDA divides correctly rounded. In a block with scale 2^−126 a subnormal element x has
    # x / 2^−126 in (0, 1), which rounds to 1 above 1/2: it must not be flushed.
    "eager_numerics.division_rounding": True,
    # libdevice calls (ilogb inside Inductor's frexp) keep subnormals: a subnormal block
    # maximum has its own exponent, not ilogb(0)'s.
    "eager_numerics.disable_ftz": True,
    # No contraction of a multiply and an add into one rounding (as eager CUDA computes).
    "emulate_precision_casts": True,
}
"""Inductor options that make Triton kernels round every operation as eager CUDA does (the
C++ backend already does: its flags keep IEEE division and subnormals)."""


def unavailable_reason(device: torch.device | str) -> str | None:
    """Why tensors on ``device`` cannot take the compiled quantizer; None when they can."""
    return _reason(os.environ.get(ENV_DISABLE, ""), torch.device(device).type)


@functools.cache
def _reason(disable: str, device_type: str) -> str | None:
    # Cached per setting and device type: every quantized operand on CUDA asks.
    if disable not in ("", "0"):
        return f"{ENV_DISABLE} is set"
    if device_type != "cuda":
        return "compiled for CUDA tensors only (the CPU runs the fused C kernels)"
    if not torch.cuda.is_available():
        return "no CUDA device"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (torch.compile needs it for CUDA)"
    from torch._inductor import config as inductor_config  # only where Triton would compile

    missing = sorted(set(EXACT_TRITON) - set(inductor_config.get_config_copy()))
    if missing:
        return f"torch {torch.__version__} lacks the Inductor options {missing} (exact rounding)"
    return None


def compiled_available(device: torch.device | str) -> bool:
    """True when quantization of tensors on ``device`` runs compiled (CUDA with triton)."""
    return unavailable_reason(device) is None


def can_quantize(x: torch.Tensor, fmt: BlockFormat, rounding: str) -> bool:
    """Whether the dispatch sends this tensor to the compiled quantizer: a non-empty FP32 tensor
    on a device where it is available, nearest rounding."""
    return (
        rounding == "nearest_even"
        and x.dtype == torch.float32
        and x.numel() > 0
        and x.device.type == "cuda"
        and compiled_available(x.device)
    )


def can_unpack(p: PackedTensor) -> bool:
    """Whether the dispatch decodes this packed tensor with the compiled unpacker."""
    return (
        p.dtype == torch.float32
        and p.elements.numel() > 0
        and p.elements.device.type == "cuda"
        and compiled_available(p.elements.device)
    )


def describe(device: torch.device | str = "cuda") -> dict[str, str]:
    """Which quantizer CUDA tensors on ``device`` take, and why: for timing records."""
    reason = unavailable_reason(device)
    return {
        "cuda_quantizer": "torch.compile (Inductor, Triton)"
        if reason is None
        else "pytorch reference",
        "cuda_quantizer_reason": reason or "triton is installed and a CUDA device is present",
    }


def _compiled(fn: Callable[..., object], name: str) -> Callable[..., object]:
    """fn compiled with dynamic sizes: Dynamo specialises on the format (a constant of fn) and,
    of the tensors, only on their padding pattern, orientation and dimensions below a block."""
    # Dynamo keeps compiled variants, and counts the recompile limit, per code object: a copy
    # of fn's code under the format's name gives each format its own (and names it in logs).
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    own = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    inner = torch.compile(own, fullgraph=True, options=EXACT_TRITON)

    def run(*tensors: torch.Tensor):
        # Marked dynamic here rather than by dynamic=True, which would also turn the format's
        # integers (bits, block) into symbols: kernels generic in what is a constant.
        for t in tensors:
            for dim in range(t.dim()):
                torch._dynamo.maybe_mark_dynamic(t, dim)
        with (
            torch.no_grad(),
            torch._dynamo.config.patch(
                recompile_limit=RECOMPILE_LIMIT, automatic_dynamic_shapes=False
            ),
        ):
            return inner(*tensors)

    return run


@functools.cache
def _quantizer(fmt: BlockFormat) -> Callable[[torch.Tensor], torch.Tensor]:
    return _compiled(lambda x: quantize(x, fmt), f"quantize_{fmt.name}")


@functools.cache
def _packer(fmt: BlockFormat) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    def parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = pack(x, fmt)
        return p.elements, p.exponents

    return _compiled(parts, f"pack_{fmt.name}")


@functools.cache
def _unpacker(
    fmt: BlockFormat, dtype: torch.dtype
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return _compiled(
        lambda elements, exponents: unpack(PackedTensor(elements, exponents, fmt, dtype)),
        f"unpack_{fmt.name}",
    )


def quantize_compiled(x: torch.Tensor, fmt: BlockFormat) -> torch.Tensor:
    """``tqpinn.formats.quantize(x, fmt)`` (nearest rounding), compiled for x's device."""
    return _quantizer(fmt)(x)


def pack_compiled(x: torch.Tensor, fmt: BlockFormat) -> PackedTensor:
    """``tqpinn.formats.pack(x, fmt)`` (nearest rounding), compiled for x's device."""
    elements, exponents = _packer(fmt)(x)
    return PackedTensor(elements, exponents, fmt, x.dtype)


def unpack_compiled(p: PackedTensor) -> torch.Tensor:
    """``tqpinn.formats.unpack(p)``, compiled for p's device."""
    return _unpacker(p.fmt, p.dtype)(p.elements, p.exponents)
