"""Block formats: properties (hypothesis), named edge cases, packing and the packed transpose."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tqpinn.errors import UserError
from tqpinn.formats import (
    FORMATS,
    MX_INT8,
    SMX_INT8,
    SMX_INT12,
    BlockFormat,
    get_format,
    pack,
    quantize,
    unpack,
)

INT_FORMATS = sorted(n for n, f in FORMATS.items() if f.element == "int")
SQUARE_FORMATS = sorted(n for n, f in FORMATS.items() if f.square)

finite32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)
matrices = st.tuples(st.integers(1, 40), st.integers(1, 40)).flatmap(
    lambda s: arrays(np.float32, s, elements=finite32)
)


def block_steps(x: torch.Tensor, fmt: BlockFormat) -> torch.Tensor:
    """Per-element quantization step 2^(floor(log2 max|block|) − emax) (normal range), by a
    plain loop independent of the library."""
    step = torch.zeros_like(x, dtype=torch.float64)
    br, bc = fmt.block
    for r in range(0, x.shape[0], br):
        for c in range(0, x.shape[1], bc):
            amax = x[r : r + br, c : c + bc].abs().max().item()
            if amax > 0:
                e = math.frexp(amax)[1] - 1 - fmt.emax
                step[r : r + br, c : c + bc] = 2.0 ** max(e, -126)
    return step


@settings(max_examples=40, deadline=None)
@given(matrices, st.sampled_from(sorted(FORMATS)))
def test_idempotent(a, name):
    x, fmt = torch.from_numpy(a), FORMATS[name]
    q = quantize(x, fmt)
    assert torch.equal(quantize(q, fmt), q)


@settings(max_examples=40, deadline=None)
@given(matrices, st.sampled_from(SQUARE_FORMATS))
def test_square_blocks_commute_with_transpose(a, name):
    x, fmt = torch.from_numpy(a), FORMATS[name]
    assert torch.equal(quantize(x.T, fmt), quantize(x, fmt).T)
    packed_t = pack(x, fmt).transpose()
    direct = pack(x.T.contiguous(), fmt)
    assert torch.equal(packed_t.elements, direct.elements)
    assert torch.equal(packed_t.exponents, direct.exponents)
    assert torch.equal(unpack(packed_t), quantize(x.T, fmt))


def test_mx_blocks_do_not_commute_with_transpose():
    x = torch.randn(64, 64)
    assert not torch.equal(quantize(x.T, MX_INT8), quantize(x, MX_INT8).T)
    with pytest.raises(ValueError, match="non-square"):
        pack(x, MX_INT8).transpose()


@settings(max_examples=40, deadline=None)
@given(matrices, st.sampled_from(["smx_int8", "smx_int12", "mx_int8", "smx8_int8"]))
def test_nearest_error_at_most_half_a_step(a, name):
    """|Q(x) − x| ≤ step/2, except where round-to-nearest carried past the largest integer and
    was clamped: there the error is below one step (|x|/step < 2^(b−1) by the scale rule)."""
    x, fmt = torch.from_numpy(a).double(), FORMATS[name]
    step = block_steps(x, fmt)
    err = (quantize(x.float(), fmt).double() - x).abs()
    clamped = x.abs() / step.clamp_min(1e-300) > fmt.max_element + 0.5
    assert torch.all(err[~clamped] <= step[~clamped] / 2)
    assert torch.all(err[clamped] < step[clamped])


@settings(max_examples=30, deadline=None)
@given(matrices, st.sampled_from(["smx_int8", "mx_int12"]), st.integers(0, 2**31 - 1))
def test_stochastic_error_below_one_step(a, name, seed):
    x, fmt = torch.from_numpy(a).double(), FORMATS[name]
    g = torch.Generator().manual_seed(seed)
    q = quantize(x.float(), fmt, rounding="stochastic", generator=g).double()
    assert torch.all((q - x).abs() < block_steps(x, fmt).clamp_min(1e-300))
    assert torch.equal(quantize(q.float(), fmt), q.float())  # on the grid


def test_stochastic_rounding_is_unbiased():
    """Hoeffding: each sample lies in [lo, lo + step], so the mean of n samples is within
    t = step·sqrt(ln(2/δ)/(2n)) of x with probability 1 − δ. n = 4000, δ = 1e-9 per element
    (64 elements): t ≈ 0.051 step. Nearest rounding would miss by up to 0.5 step."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 8, generator=g)
    x[::4, ::4] = 4.0  # every block's maximum is 4 = 64·2^-4, on the grid: nothing clamps
    fmt, n = SMX_INT8, 4000
    step = block_steps(x.double(), fmt)
    samples = quantize(x.expand(n, 8, 8).contiguous(), fmt, "stochastic", g).double()
    t = step * math.sqrt(math.log(2 / 1e-9) / (2 * n))
    assert torch.all((samples.mean(0) - x.double()).abs() <= t)
    assert (quantize(x, fmt).double() - x.double()).abs().max() > 4 * t.max()  # test has power


def test_stochastic_rounding_is_reproducible_and_needs_a_generator():
    x = torch.randn(16, 16)
    a = quantize(x, SMX_INT8, "stochastic", torch.Generator().manual_seed(5))
    b = quantize(x, SMX_INT8, "stochastic", torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(UserError, match="Generator"):
        quantize(x, SMX_INT8, "stochastic")
    with pytest.raises(UserError, match="nearest_even"):
        quantize(x, SMX_INT8, "truncate")


def test_zero_block_stays_zero():
    x = torch.zeros(8, 8)
    x[4:, 4:] = torch.randn(4, 4)
    q = quantize(x, SMX_INT8)
    assert torch.equal(q[:4], torch.zeros(4, 8)) and torch.equal(q[:, :4], torch.zeros(8, 4))
    assert torch.equal(quantize(torch.zeros(3, 5), SMX_INT12), torch.zeros(3, 5))


def test_ties_round_half_to_even():
    # Block maximum 64 = 2^6: scale 2^(6 − 6) = 1 for INT8, so elements are plain integers.
    row = torch.tensor([64.0, 0.5, 1.5, 2.5, -0.5, -2.5, 3.5, -3.5])
    got = quantize(row.reshape(1, 8), BlockFormat(8, (1, 8))).flatten()
    assert got.tolist() == [64.0, 0.0, 2.0, 2.0, -0.0, -2.0, 4.0, -4.0]


def test_carry_is_clamped_to_the_largest_integer():
    # max 127.6: floor(log2) = 6, scale 1; round(127.6) = 128 carries past 127 and is clamped.
    x = torch.tensor([[127.6, -127.6, 1.0, 0.0]])
    assert quantize(x, BlockFormat(8, (1, 4))).tolist() == [[127.0, -127.0, 1.0, 0.0]]


def test_tiny_blocks_use_the_smallest_scale():
    # max 2^-120: scale 2^-126 exactly; max 2^-130 would need 2^-136, clamped to 2^-126, so
    # values below 2^-127 flush to zero and the error stays within half the (clamped) step.
    x = torch.tensor([[2.0**-120, 3 * 2.0**-126, 0.0, 0.0], [2.0**-130, 2.0**-140, 0.0, 0.0]])
    q = quantize(x, BlockFormat(8, (1, 4)))
    assert q[0].tolist() == x[0].tolist()
    assert q[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_huge_values_stay_finite():
    big = torch.finfo(torch.float32).max
    x = torch.tensor([[big, -big, big / 3, 1.0]])
    q = quantize(x, BlockFormat(8, (1, 4)))
    assert torch.isfinite(q).all()
    # scale 2^(127 − 6): big/scale ≈ 128 − 2^-17 rounds to 128, clamped to 127.
    assert q[0, 0].item() == 127 * 2.0**121 and q[0, 3].item() == 0.0


def test_partial_edge_blocks_have_their_own_scale():
    x = torch.ones(5, 7)
    x[4, 6] = 100.0  # only in the bottom-right partial block (rows 4, cols 4..6)
    x[0, 0] = 1.01
    q = quantize(x, SMX_INT8)
    # Block (0, 0): max 1.01, scale 2^-6, 1.01 -> 65/64; block (1, 1): max 100, scale 2^0.
    assert q[0, 0].item() == 65 / 64
    assert q[4, 4:].tolist() == [1.0, 1.0, 100.0]
    assert torch.equal(q[:4, 4:], torch.ones(4, 3))  # partial column block, its own max 1


def test_nonfinite_blocks_decode_to_nan_and_others_are_untouched():
    x = torch.randn(8, 8)
    x[1, 1], x[6, 5] = math.inf, math.nan
    q = quantize(x, SMX_INT8)
    assert q[:4, :4].isnan().all() and q[4:, 4:].isnan().all()
    assert torch.equal(q[:4, 4:], quantize(x[:4, 4:].contiguous(), SMX_INT8))
    assert unpack(pack(x, SMX_INT8)).isnan().sum() == 32


def test_pack_dtypes_and_bit_count():
    x = torch.randn(8, 8)
    p8, p12 = pack(x, SMX_INT8), pack(x, SMX_INT12)
    assert p8.elements.dtype == torch.int8 and p12.elements.dtype == torch.int16
    assert p8.exponents.shape == (2, 2) and p8.exponents.dtype == torch.int8
    assert p8.nbits == 64 * 8 + 4 * 8  # 8.5 bits per element
    assert p12.nbits == 64 * 12 + 4 * 8
    assert pack(torch.randn(4, 64), MX_INT8).nbits == 256 * 8 + 8 * 8  # 8.25 bits per element
    assert p8.elements.abs().max() <= 127 and p12.elements.abs().max() <= 2047


def test_float64_and_batched_inputs():
    x = torch.randn(3, 10, 12, dtype=torch.float64)
    q = quantize(x, SMX_INT8)
    assert q.dtype == torch.float64
    for i in range(3):
        assert torch.equal(q[i], quantize(x[i], SMX_INT8))  # blocks tile the last two dims
    assert torch.equal(unpack(pack(x, SMX_INT8)), q)


def test_bad_formats_are_user_errors():
    with pytest.raises(UserError, match=r"2\.\.16"):
        BlockFormat(20, (4, 4))
    with pytest.raises(UserError, match="e4m3"):
        BlockFormat(8, (4, 4), "fp4")
    with pytest.raises(UserError, match="positive"):
        BlockFormat(8, (0, 4))
    with pytest.raises(UserError, match="smx_int8"):
        get_format("smx_int9")


def test_names_round_trip():
    for name, fmt in FORMATS.items():
        assert fmt.name == name
    assert SMX_INT8.name == "smx_int8" and MX_INT8.name == "mx_int8"
