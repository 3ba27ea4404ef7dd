"""Grid values are exact in TF32, so quantized GEMMs could run on TF32 tensor cores unchanged.

TF32 keeps FP32's 8-bit exponent and 10 fraction bits (11 significant). A value of a block
format is m·2^e with |m| ≤ 2^(bits−1) − 1 (at most 11 significant bits for bits ≤ 12; FP8
elements have at most 4) and e ≥ −126 (the block exponent is clamped there), so a nonzero value
is a normal FP32 number whose low 13 fraction bits are zero: rounding it to TF32 is the
identity. Here the
rounding is emulated (round to nearest even at fraction bit 10) for every named format, on data
spanning FP32's range, zeros, subnormal inputs and non-finite blocks; a 16-bit format and plain
FP32 data are the controls that the emulation does change.
"""

import pytest
import torch

from tqpinn.formats import FORMATS, BlockFormat, quantize

LOW_BITS = 13  # FP32 has 23 fraction bits, TF32 keeps 10


def tf32_round(x: torch.Tensor) -> torch.Tensor:
    """x rounded to TF32 (10 fraction bits, nearest even), as FP32; non-finite kept."""
    bits = x.view(torch.int32).to(torch.int64)
    lsb = (bits >> LOW_BITS) & 1
    rounded = (bits + (1 << (LOW_BITS - 1)) - 1 + lsb) & ~((1 << LOW_BITS) - 1)
    out = rounded.to(torch.int32).view(torch.float32)
    return torch.where(torch.isfinite(x), out, x)


def _wide_data(shape: tuple[int, int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp2(
        torch.randint(-140, 120, shape, generator=g).float()
    )
    x[0, :4] = 0.0  # an all-zero block row
    x[1, 0] = 1e-45  # the smallest subnormal input
    x[2, 0] = 3.0e38  # near FP32's largest
    x[3, 5] = float("inf")
    return x


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_rounding_grid_values_to_tf32_is_the_identity(name):
    q = quantize(_wide_data((64, 96), 1), FORMATS[name])
    finite = torch.isfinite(q)
    assert torch.equal(tf32_round(q)[finite], q[finite])


def test_the_emulation_changes_what_tf32_cannot_hold():
    x = torch.randn(64, 96, generator=torch.Generator().manual_seed(2))
    wide = quantize(x, BlockFormat(16, (4, 4)))  # up to 15 significant bits: most are rounded
    changed = (tf32_round(wide) != wide) & torch.isfinite(wide)
    assert changed.float().mean() > 0.5
    plain = torch.randn(1000)
    assert (tf32_round(plain) != plain).float().mean() > 0.99
    assert tf32_round(torch.tensor([1.0 + 2**-11])).item() == 1.0  # a tie goes to even
    assert tf32_round(torch.tensor([1.0 + 3 * 2**-11])).item() == 1.0 + 2**-9
