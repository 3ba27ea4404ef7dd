"""Block-scaled number formats: SMX (square blocks), MX (1 x n blocks), per-tensor.

A tensor is tiled over its last two dimensions by blocks of ``block = (rows, cols)`` starting at
index 0; a partial block at an edge is its own, smaller block; leading dimensions are batch. Each
block shares one power-of-two scale s = 2^(floor(log2 max|block|) − emax) and stores elements
x / s encoded in the element type:

* ``int`` (b bits): emax = b − 2, so the block maximum maps into [2^(b−2), 2^(b−1)); elements
  are integers round(x / s) clamped to ±(2^(b−1) − 1) (the OCP MX INT8 definition);
* ``e4m3`` / ``e5m2`` (8 bits): emax = 8 / 15 (the element type's largest exponent), elements
  are x / s rounded to the FP8 type, saturating at its largest finite value (OCP MXFP8).

The scale exponent is stored in 8 bits and clamped to [−126, 127], so every scale is a normal
FP32 power of two (an all-zero block stores exponent −126 and zero elements). Non-finite
rule (OCP MX): a block containing NaN or ±Inf has the NaN scale; all its values decode to NaN.

Two representations: fake-quant (:func:`quantize`: a float tensor whose values lie exactly on
the grid) and packed (:func:`pack`: integer or FP8 elements plus int8 exponents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tqpinn.errors import UserError

ROUNDINGS = ("nearest_even", "stochastic")
SCALE_BITS = 8
"""Bits of one block's shared exponent (E8M0, as OCP MX)."""
MIN_SCALE_EXP, MAX_SCALE_EXP = -126, 127
NAN_SCALE_EXP = -128
"""Packed exponent code of a block that held NaN or ±Inf."""


@dataclass(frozen=True)
class _FloatElement:
    emax: int  # exponent of the largest finite value: the block maximum maps to 2^emax..
    max_value: float
    dtype: torch.dtype


_FLOAT_ELEMENTS = {
    # OCP OFP8: e4m3 max 448 = 1.75·2^8 (no infinities), e5m2 max 57344 = 1.75·2^15.
    "e4m3": _FloatElement(8, 448.0, torch.float8_e4m3fn),
    "e5m2": _FloatElement(15, 57344.0, torch.float8_e5m2),
}
ELEMENTS = ("int", *_FLOAT_ELEMENTS)


@dataclass(frozen=True)
class BlockFormat:
    """A block-scaled format: element type of ``bits`` bits, blocks ``block`` = (rows, cols)
    over the last two dimensions (None: one scale for the whole tensor)."""

    bits: int
    block: tuple[int, int] | None
    element: str = "int"

    def __post_init__(self) -> None:
        if self.element not in ELEMENTS:
            raise UserError(f"unknown element type {self.element!r}; choose from {ELEMENTS}")
        if self.element == "int" and not 2 <= self.bits <= 16:
            raise UserError(f"integer element bits must be in 2..16, got {self.bits}")
        if self.element != "int" and self.bits != 8:
            raise UserError(f"element {self.element!r} has 8 bits, got bits={self.bits}")
        if self.block is not None:
            block = tuple(self.block)
            if len(block) != 2 or not all(isinstance(b, int) and b >= 1 for b in block):
                raise UserError(f"block must be two positive integers (rows, cols), got {block}")
            object.__setattr__(self, "block", block)

    @property
    def name(self) -> str:
        """e.g. "smx_int8" (4x4), "smx8_int8" (8x8), "mx_int12" (1x32), "tensor_e4m3"."""
        element = f"int{self.bits}" if self.element == "int" else self.element
        if self.block is None:
            return f"tensor_{element}"
        rows, cols = self.block
        if rows == cols:
            return f"smx_{element}" if rows == 4 else f"smx{rows}_{element}"
        if rows == 1:
            return f"mx_{element}" if cols == 32 else f"mx{cols}_{element}"
        return f"block{rows}x{cols}_{element}"

    @property
    def square(self) -> bool:
        """True when Q(xᵀ) = Q(x)ᵀ: square blocks, or one scale for the whole tensor."""
        return self.block is None or self.block[0] == self.block[1]

    @property
    def emax(self) -> int:
        if self.element == "int":
            return self.bits - 2
        return _FLOAT_ELEMENTS[self.element].emax

    @property
    def max_element(self) -> float:
        """Largest element magnitude, in units of the block scale."""
        if self.element == "int":
            return float(2 ** (self.bits - 1) - 1)
        return _FLOAT_ELEMENTS[self.element].max_value

    def transposed(self) -> BlockFormat:
        """The same format with the block's rows and columns swapped."""
        block = None if self.block is None else (self.block[1], self.block[0])
        return BlockFormat(self.bits, block, self.element)

    def packed_bits(self, shape: tuple[int, ...]) -> int:
        """Bits of a packed tensor of ``shape``: elements at ``bits`` plus 8 per block."""
        return math.prod(shape) * self.bits + _n_blocks(shape, self.block) * SCALE_BITS


SMX_INT8 = BlockFormat(8, (4, 4))
SMX_INT12 = BlockFormat(12, (4, 4))
MX_INT8 = BlockFormat(8, (1, 32))
MX_INT12 = BlockFormat(12, (1, 32))

FORMATS: dict[str, BlockFormat] = {
    f.name: f
    for f in (
        SMX_INT8,
        SMX_INT12,
        BlockFormat(8, (8, 8)),
        BlockFormat(12, (8, 8)),
        BlockFormat(8, (32, 32)),
        BlockFormat(12, (32, 32)),
        MX_INT8,
        MX_INT12,
        BlockFormat(8, None),
        BlockFormat(12, None),
        BlockFormat(8, (4, 4), "e4m3"),
        BlockFormat(8, (4, 4), "e5m2"),
        BlockFormat(8, (1, 32), "e4m3"),
        BlockFormat(8, (1, 32), "e5m2"),
    )
}
"""Named formats, by :attr:`BlockFormat.name`."""


def get_format(name: str) -> BlockFormat:
    """The named format; UserError listing the names if unknown."""
    if name not in FORMATS:
        raise UserError(f"unknown number format {name!r}; choose from {sorted(FORMATS)}")
    return FORMATS[name]


@dataclass(frozen=True)
class PackedTensor:
    """Packed block tensor: ``elements`` (int8 / int16 / FP8, the original shape, in units of
    the block scale) and ``exponents`` (int8, shape (..., row blocks, col blocks))."""

    elements: torch.Tensor
    exponents: torch.Tensor
    fmt: BlockFormat
    dtype: torch.dtype

    @property
    def shape(self) -> torch.Size:
        return self.elements.shape

    @property
    def nbits(self) -> int:
        """Storage at the format's real widths (12-bit elements count 12 bits, not 16)."""
        return self.fmt.packed_bits(tuple(self.elements.shape))

    def transpose(self) -> PackedTensor:
        """The packed form of Q(x)ᵀ, with no re-quantization: square blocks only.

        Square blocks tiled from index 0 map block (i, j) of x onto block (j, i) of xᵀ with the
        same members, so Q(xᵀ) = Q(x)ᵀ exactly.
        """
        if not self.fmt.square:
            raise ValueError(
                f"format {self.fmt.name} has non-square blocks {self.fmt.block}: its transpose"
                " is a different quantization; re-quantize the high-precision tensor instead"
            )
        return PackedTensor(
            self.elements.transpose(-1, -2), self.exponents.transpose(-1, -2), self.fmt, self.dtype
        )


def _matrix_shape(shape: tuple[int, ...], block: tuple[int, int] | None) -> tuple[int, ...]:
    """The (..., rows, cols) view that blocks tile: a scalar or vector is one row; a per-tensor
    format sees the whole tensor as one row (one block)."""
    if block is None:
        return (1, math.prod(shape))
    return (1, *shape) if len(shape) == 1 else (1, 1) if len(shape) == 0 else shape


def _block_dims(shape: tuple[int, ...], block: tuple[int, int] | None) -> tuple[int, int]:
    # An empty tensor is tiled by 1-wide blocks: none of them holds an element.
    rows, cols = (max(n, 1) for n in _matrix_shape(shape, block)[-2:])
    return (rows, cols) if block is None else (min(block[0], rows), min(block[1], cols))


def _n_blocks(shape: tuple[int, ...], block: tuple[int, int] | None) -> int:
    full = _matrix_shape(shape, block)
    br, bc = _block_dims(shape, block)
    return math.prod(full[:-2]) * -(-full[-2] // br) * -(-full[-1] // bc)


def _to_blocks(x: torch.Tensor, br: int, bc: int) -> torch.Tensor:
    """(..., R, C) -> (..., R/br, br, C/bc, bc), zero-padding partial edge blocks."""
    rows, cols = x.shape[-2:]
    pad_r, pad_c = -rows % br, -cols % bc
    if pad_r or pad_c:
        x = F.pad(x, (0, pad_c, 0, pad_r))
    return x.reshape(*x.shape[:-2], (rows + pad_r) // br, br, (cols + pad_c) // bc, bc)


def _from_blocks(xb: torch.Tensor, shape: tuple[int, ...], fmt: BlockFormat) -> torch.Tensor:
    """Inverse of the blocking of a tensor of ``shape``: drop the padding, restore the shape."""
    rows, cols = _matrix_shape(shape, fmt.block)[-2:]
    nr, br, nc, bc = xb.shape[-4:]
    return xb.reshape(*xb.shape[:-4], nr * br, nc * bc)[..., :rows, :cols].reshape(shape)


def _pow2(e: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """2^e for integer e in the normal range, built from the exponent bits (exact)."""
    if dtype == torch.float64:
        return ((e.to(torch.int64) + 1023) << 52).view(torch.float64)
    return ((e.to(torch.int32) + 127) << 23).view(torch.float32).to(dtype)


def _check_rounding(fmt: BlockFormat, rounding: str, generator: torch.Generator | None) -> None:
    if rounding not in ROUNDINGS:
        raise UserError(f"unknown rounding {rounding!r}; choose from {ROUNDINGS}")
    if rounding == "stochastic" and fmt.element != "int":
        raise UserError(
            f"stochastic rounding is implemented for integer elements, not {fmt.element!r}"
        )
    if rounding == "stochastic" and generator is None:
        raise UserError("stochastic rounding needs an explicit, seeded torch.Generator")


def _quantize_blocks(
    x: torch.Tensor, fmt: BlockFormat, rounding: str, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blocked elements (float, in units of the scale, (..., nr, br, nc, bc)), scale exponents
    (int32, (..., nr, 1, nc, 1)) and the mask of blocks holding NaN or ±Inf."""
    if not isinstance(fmt, BlockFormat):
        raise TypeError(
            f"fmt must be a BlockFormat (e.g. SMX_INT8 or get_format(name)), got {fmt!r}"
        )
    _check_rounding(fmt, rounding, generator)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"quantize needs a floating-point tensor, got {got}")
    shape = tuple(x.shape)
    xb = _to_blocks(x.reshape(_matrix_shape(shape, fmt.block)), *_block_dims(shape, fmt.block))
    amax = xb.abs().amax(dim=(-3, -1), keepdim=True)
    nonfinite = ~torch.isfinite(amax)
    # floor(log2 amax) = frexp exponent − 1, exact (frexp handles subnormals).
    exp = torch.frexp(amax).exponent - 1 - fmt.emax
    exp = exp.clamp_(MIN_SCALE_EXP, MAX_SCALE_EXP).masked_fill_(
        nonfinite | (amax == 0), MIN_SCALE_EXP
    )
    v = xb / _pow2(exp, x.dtype)  # exact: division by a power of two, result normal or zero
    limit = fmt.max_element
    if fmt.element != "int":
        v = v.clamp(-limit, limit).to(_FLOAT_ELEMENTS[fmt.element].dtype).to(x.dtype)
    elif rounding == "nearest_even":
        v = torch.round(v).clamp_(-limit, limit)  # torch.round is half-to-even
    else:
        u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device)
        v = torch.floor(v + u).clamp_(-limit, limit)
    return v, exp, nonfinite


def quantize(
    x: torch.Tensor,
    fmt: BlockFormat,
    rounding: str = "nearest_even",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fake-quantize ``x``: same shape and dtype, every value exactly on the format's grid."""
    v, exp, nonfinite = _quantize_blocks(x, fmt, rounding, generator)
    q = (v * _pow2(exp, x.dtype)).masked_fill_(nonfinite, math.nan)
    return _from_blocks(q, tuple(x.shape), fmt)


def pack(
    x: torch.Tensor,
    fmt: BlockFormat,
    rounding: str = "nearest_even",
    generator: torch.Generator | None = None,
) -> PackedTensor:
    """Packed form of ``quantize(x, fmt, rounding, generator)``."""
    v, exp, nonfinite = _quantize_blocks(x, fmt, rounding, generator)
    v = _from_blocks(v.masked_fill(nonfinite, 0), tuple(x.shape), fmt)
    if fmt.element == "int":
        elements = v.to(torch.int8 if fmt.bits <= 8 else torch.int16)
    else:
        elements = v.to(_FLOAT_ELEMENTS[fmt.element].dtype)
    exponents = exp.masked_fill(nonfinite, NAN_SCALE_EXP).to(torch.int8)[..., 0, :, 0]
    return PackedTensor(elements, exponents, fmt, x.dtype)


def unpack(p: PackedTensor) -> torch.Tensor:
    """Decode a packed tensor to its fake-quant values (dtype of the tensor that was packed)."""
    shape = tuple(p.elements.shape)
    v = _to_blocks(
        p.elements.to(p.dtype).reshape(_matrix_shape(shape, p.fmt.block)),
        *_block_dims(shape, p.fmt.block),
    )
    e = p.exponents.to(torch.int32)[..., :, None, :, None]
    nonfinite = e == NAN_SCALE_EXP
    q = (v * _pow2(e.masked_fill(nonfinite, 0), p.dtype)).masked_fill_(nonfinite, math.nan)
    return _from_blocks(q, shape, p.fmt)
