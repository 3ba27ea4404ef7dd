"""TF32 tensor cores for quantized GEMMs on CUDA, where they give the FP32 result exactly.

TF32 keeps FP32's 8-bit exponent and 11 significant bits. A grid value of a block format is a
power of two times an element with at most 11 significant bits (integers of up to 12 bits;
FP8 elements have 4 or 3), so TF32 holds it unchanged (tests/test_formats_tf32.py checks every
named format), the product of two such values is exact in FP32, and the tensor cores accumulate
in FP32. A product of two quantized operands may therefore run with TF32 enabled and differ
from FP32 IEEE only in the order of its FP32 sums. It is enabled only around those products,
never for an FP32 operand or an FP32 baseline, and only where the spec asks (``quant.tf32``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from tqpinn.formats import BlockFormat, PackedTensor
from tqpinn.quant.store import GemmOperand, OnGrid

TF32_SIGNIFICANT_BITS = 11
_FLOAT_ELEMENT_SIGNIFICANT_BITS = {"e4m3": 4, "e5m2": 3}


def significant_bits(fmt: BlockFormat) -> int:
    """Significant bits of an element of ``fmt`` (integer: bits − 1; FP8: mantissa + 1)."""
    if fmt.element == "int":
        return fmt.bits - 1
    return _FLOAT_ELEMENT_SIGNIFICANT_BITS[fmt.element]


def exact_in_tf32(fmt: BlockFormat | None) -> bool:
    """Whether every grid value of ``fmt`` is a TF32 number (None, FP32 data, is not)."""
    return fmt is not None and significant_bits(fmt) <= TF32_SIGNIFICANT_BITS


def exact_operands(*operands: GemmOperand) -> bool:
    """Whether every operand is on the grid of a format exact in TF32 (plain FP32 is not)."""
    return all(isinstance(x, PackedTensor | OnGrid) and exact_in_tf32(x.fmt) for x in operands)


@contextmanager
def cuda_tf32_matmuls() -> Iterator[None]:
    """CUDA FP32 matmuls may use TF32 tensor cores inside the block; the previous setting is
    restored afterwards (also on an exception)."""
    matmul = torch.backends.cuda.matmul
    try:
        key, before = "fp32_precision", matmul.fp32_precision
        value: str | bool = "tf32"
    except AttributeError:  # torch before 2.9 has only the legacy switch
        key, before, value = "allow_tf32", matmul.allow_tf32, True
    setattr(matmul, key, value)
    try:
        yield
    finally:
        setattr(matmul, key, before)
