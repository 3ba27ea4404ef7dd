"""The exact fast path against the PyTorch reference: packing bit for bit, the bf16 GEMM within
FP32 accumulation rounding of the exact sum of the same products."""

import dataclasses
import math

import pytest
import torch

from tqpinn.formats import FORMATS, pack, quantize, unpack
from tqpinn.qops import gemm
from tqpinn.quant import PRESETS, fastpath

pytestmark = pytest.mark.skipif(not fastpath.available(), reason="no AVX512-BF16 / C compiler")

KERNEL_FORMATS = sorted(n for n, f in FORMATS.items() if f.element == "int" and f.block)
U32 = 2.0**-24


def _data(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * torch.exp2(torch.randint(-8, 8, shape, generator=g))


@pytest.mark.parametrize("name", KERNEL_FORMATS)
@pytest.mark.parametrize("shape", [(64, 96), (37, 70), (5, 3), (1, 33), (130, 1)], ids=str)
@pytest.mark.parametrize("transposed", [False, True])
def test_kernel_quantization_is_the_reference_bit_for_bit(name, shape, transposed):
    fmt = FORMATS[name]
    x = _data(shape, 3)
    x[0, 0] = math.nan  # a NaN block: all NaN, packed with the NaN exponent
    src = x.T.contiguous() if transposed else x
    p, values, bf16 = fastpath.quantize_matrix(x, fmt, transposed, values=True, bf16=True)
    ref = pack(src, fmt)
    assert torch.equal(p.elements, ref.elements) and torch.equal(p.exponents, ref.exponents)
    want = quantize(src, fmt)
    assert torch.equal(values.isnan(), want.isnan())
    assert torch.equal(values.nan_to_num(), want.nan_to_num())
    assert torch.equal(fastpath.unpack_matrix(p)[0].nan_to_num(), unpack(ref).nan_to_num())
    if fmt.bits <= 8:  # ≤ 8 significant bits: bfloat16 holds the value exactly
        assert torch.equal(bf16.float().nan_to_num(), want.nan_to_num())
        unpacked = fastpath.unpack_matrix(p, False, True)[1]
        assert torch.equal(unpacked.float().nan_to_num(), bf16.float().nan_to_num())


@pytest.mark.parametrize(("m", "n", "k"), [(100, 33, 40), (13, 7, 3), (64, 64, 1), (24, 40, 2000)])
@pytest.mark.parametrize("layout", ["rows", "transposed"])
def test_bf16_gemm_is_exact_products_with_fp32_sums(m, n, k, layout):
    """Products of bfloat16 values are exact in FP32, so against the exact sum S = Σ a_k b_k
    (float64, exact here: 16-bit products, |S| < 2^40) an FP32 accumulation in any order errs
    by at most γ_K Σ|a_k b_k| (Higham, Thm 3.5), γ_K = K u/(1 − K u), u = 2^-24."""
    fmt = FORMATS["smx_int8"]
    a = fastpath.quantize_matrix(_data((m, k), 1), fmt, bf16=True, packed=False)[2]
    b = fastpath.quantize_matrix(_data((n, k), 2), fmt, bf16=True, packed=False)[2]
    if layout == "transposed":
        a, b = a.T.contiguous().T, b.T.contiguous().T
    got = fastpath.gemm_bf16(a, b).double()
    exact = a.double() @ b.double().T
    gamma = k * U32 / (1 - k * U32)
    bound = gamma * (a.double().abs() @ b.double().abs().T)
    assert torch.all((got - exact).abs() <= bound)


@pytest.mark.parametrize("preset", ["smx_paper", "mx_int8"])
def test_fast_and_reference_products_agree_within_two_accumulation_bounds(preset):
    """The same quantized layer with and without the fast path: the forward products differ
    only in FP32 summation order, |Δ| ≤ 2 γ_K |Q(x)|·|Q(w)|ᵀ; the gradients use the same FP32
    GEMMs on the same grid values and agree bit for bit."""
    fast = PRESETS[preset]
    slow = dataclasses.replace(fast, fast=False)
    x = _data((96, 256), 5).requires_grad_()
    w = (_data((64, 256), 6) / 64).requires_grad_()
    dy = _data((96, 64), 7)
    outs = []
    for spec in (fast, slow):
        y = gemm(x, w, spec)
        outs.append((y.detach(), *torch.autograd.grad(y, (x, w), dy)))
    qx, qw = quantize(x.detach(), fast.fwd_input.fmt), quantize(w.detach(), fast.fwd_weight.fmt)
    k = 256
    bound = 2 * k * U32 / (1 - k * U32) * (qx.double().abs() @ qw.double().abs().T)
    assert torch.all((outs[0][0].double() - outs[1][0].double()).abs() <= bound)
    assert torch.equal(outs[0][1], outs[1][1]) and torch.equal(outs[0][2], outs[1][2])


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    assert not fastpath.available()


def test_tensors_off_the_cpu_never_reach_the_kernels():
    """The C kernels read host memory: operands on another device (here "meta", standing in for
    CUDA) take the PyTorch path instead of handing the kernel a device pointer."""
    from tqpinn.formats import PackedTensor
    from tqpinn.quant.store import OnGrid, bf16_operand

    fmt = FORMATS["smx_int8"]
    elements = torch.zeros(8, 8, dtype=torch.int8, device="meta")
    packed = PackedTensor(elements, torch.zeros(2, 2, dtype=torch.int8, device="meta"), fmt,
                          torch.float32)  # fmt: skip
    assert not fastpath.can_quantize(torch.zeros(8, 8, device="meta"), fmt, "nearest_even")
    assert not fastpath.can_unpack(packed)
    assert bf16_operand(packed) is None
    assert bf16_operand(OnGrid(torch.zeros(8, 8, device="meta"), fmt)) is None
