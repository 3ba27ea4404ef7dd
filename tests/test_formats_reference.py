"""An independent, slow reference of the block formats, and bit-exact agreement with it.

The reference follows the definition in DESIGN.md / PAPER_NOTES.md §3 literally: a Python loop
over blocks, Python floats and ``math.frexp``, Python's round-half-even, and an FP8 encoder built
from the bit layout. Nothing is shared with ``tqpinn.formats`` but the format's parameters.
"""

import math
import zlib

import pytest
import torch

from tqpinn.formats import FORMATS, BlockFormat, pack, quantize, unpack


def _fp8_grid(exp_bits: int, man_bits: int, nan_top_code: bool) -> list[tuple[float, int]]:
    """All finite non-negative values of an FP8 type with their mantissa field, ascending."""
    bias = 2 ** (exp_bits - 1) - 1
    values = []
    for e in range(2**exp_bits):
        for m in range(2**man_bits):
            if e == 2**exp_bits - 1 and (not nan_top_code or m == 2**man_bits - 1):
                continue  # e5m2: whole top exponent is inf/NaN; e4m3fn: only S.1111.111 is NaN
            if e == 0:
                v = m / 2**man_bits * 2.0 ** (1 - bias)
            else:
                v = (1 + m / 2**man_bits) * 2.0 ** (e - bias)
            values.append((v, m))
    return sorted(values)


FP8_GRIDS = {"e4m3": _fp8_grid(4, 3, True), "e5m2": _fp8_grid(5, 2, False)}
FP8_EMAX = {"e4m3": 8, "e5m2": 15}


def _round_fp8(v: float, element: str) -> float:
    """Nearest FP8 value, ties to even mantissa, saturating at the largest finite value."""
    grid = FP8_GRIDS[element]
    a = abs(v)
    if a >= grid[-1][0]:
        return math.copysign(grid[-1][0], v)
    best = min(grid, key=lambda g: (abs(g[0] - a), g[1] % 2))
    return math.copysign(best[0], v)


def reference_quantize(x: torch.Tensor, fmt: BlockFormat) -> torch.Tensor:
    """Round-to-nearest-even quantization of ``x`` by a loop over blocks (slow)."""
    shape = x.shape
    whole_row = fmt.block is None or x.dim() < 2  # one row: per-tensor, or a vector
    mats = x.reshape(1, 1, -1) if whole_row else x.reshape(-1, *x.shape[-2:])
    vals = mats.double().tolist()
    n_rows, n_cols = mats.shape[-2:]
    br, bc = (n_rows, n_cols) if fmt.block is None else fmt.block
    emax = fmt.bits - 2 if fmt.element == "int" else FP8_EMAX[fmt.element]
    max_int = 2 ** (fmt.bits - 1) - 1
    out = [[[0.0] * n_cols for _ in range(n_rows)] for _ in mats]
    for b, mat in enumerate(vals):
        for r0 in range(0, n_rows, br):
            for c0 in range(0, n_cols, bc):
                cells = [
                    (r, c)
                    for r in range(r0, min(r0 + br, n_rows))
                    for c in range(c0, min(c0 + bc, n_cols))
                ]
                block = [mat[r][c] for r, c in cells]
                if any(not math.isfinite(v) for v in block):
                    for r, c in cells:
                        out[b][r][c] = math.nan
                    continue
                amax = max(abs(v) for v in block)
                if amax == 0:
                    continue
                _, e2 = math.frexp(amax)  # amax = f·2^e2, f in [0.5, 1): floor(log2) = e2 − 1
                e = min(max(e2 - 1 - emax, -126), 127)
                scale = 2.0**e
                for r, c in cells:
                    v = mat[r][c] / scale
                    if fmt.element == "int":
                        q = max(-max_int, min(max_int, round(v)))
                    else:
                        q = _round_fp8(v, fmt.element)
                    out[b][r][c] = q * scale
    return torch.tensor(out, dtype=torch.float64).to(x.dtype).reshape(shape)


SHAPES = [(8, 64), (5, 7), (3, 37, 70), (33,), (1, 1), (2, 2, 4, 9)]


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_quantize_matches_slow_reference_bit_for_bit(name, shape):
    fmt = FORMATS[name]
    g = torch.Generator().manual_seed(zlib.crc32(repr((name, shape)).encode()))
    # Log-uniform magnitudes over 2^±12 so that blocks have very different scales.
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-12, 12, shape, generator=g))
    got = quantize(x, fmt)
    want = reference_quantize(x, fmt)
    assert torch.equal(got, want), (got - want).abs().max()
    assert torch.equal(unpack(pack(x, fmt)), want)


@pytest.mark.parametrize("name", ["smx_int8", "mx_int12", "smx_e4m3"])
def test_reference_handles_nonfinite_like_the_library(name):
    fmt = FORMATS[name]
    x = torch.randn(8, 40)
    x[1, 2], x[6, 33] = math.nan, -math.inf
    got, want = quantize(x, fmt), reference_quantize(x, fmt)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
