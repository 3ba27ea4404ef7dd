"""The exact fast path against the PyTorch reference: packing bit for bit on every kernel build
this CPU can run (each test names the build in its id; builds the CPU cannot run are skipped with
the reason), the bf16 GEMM within FP32 accumulation rounding of the exact sum of the same
products."""

import dataclasses
import math

import pytest
import torch

from tqpinn.formats import FORMATS, pack, quantize, unpack
from tqpinn.qops import gemm
from tqpinn.quant import PRESETS, fastpath

RUNNABLE = {isa.name for isa in fastpath.runnable_isas()}


needs_bf16_gemm = pytest.mark.skipif(
    not fastpath.gemm_available(), reason="the bf16 GEMM needs AVX512-BF16"
)

KERNEL_FORMATS = sorted(n for n, f in FORMATS.items() if f.element == "int" and f.block)
U32 = 2.0**-24


def _data(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * torch.exp2(torch.randint(-8, 8, shape, generator=g))


@pytest.mark.parametrize("name", KERNEL_FORMATS)
@pytest.mark.parametrize("shape", [(64, 96), (37, 70), (5, 3), (1, 33), (130, 1)], ids=str)
@pytest.mark.parametrize("transposed", [False, True])
def test_kernel_quantization_is_the_reference_bit_for_bit(kernel_build, name, shape, transposed):
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


EDGE_BLOCKS = [
    0.0,  # an all-zero block stays zero
    1e-40,  # a subnormal block maximum: the exponent clamps to 2^-126
    3e-39,
    2.0**-126,  # the smallest normal maximum
    2.0**-120,
    2.5,  # a tie at every width: round half to even
    -(2.0**127),  # scale 2^127 and 1/scale 2^-127, subnormal
    3.4e38,  # the largest finite values
    math.inf,  # a non-finite block: NaN scale code
    -0.0,
]


@pytest.mark.parametrize("name", KERNEL_FORMATS)
@pytest.mark.parametrize("cols", [40, 42], ids=["4_wide_blocks_tile_the_rows", "partial_blocks"])
def test_kernel_quantization_of_edge_blocks_is_the_reference(kernel_build, name, cols):
    """Block maxima at the ends of the exponent range, zero, subnormal and non-finite blocks, on
    both block loops of the kernel (4-wide blocks that tile the row, and any other)."""
    fmt = FORMATS[name]
    x = _data((8, cols), 4) * 1e-3
    for i, v in enumerate(EDGE_BLOCKS):  # one block each, at varying rows and columns
        r, c = 4 * (i % 2), 4 * i
        x[r : r + 4, c : c + 4] *= 0.0
        x[r + i % 3, c + i % 4] = v
        x[r + 3, c + 1] = v / 3 if math.isfinite(v) else 1.0
    p, values, _ = fastpath.quantize_matrix(x, fmt, values=True)
    ref = pack(x, fmt)
    assert torch.equal(p.elements, ref.elements) and torch.equal(p.exponents, ref.exponents)
    want = quantize(x, fmt)
    assert torch.equal(values.isnan(), want.isnan())
    assert torch.equal(values.nan_to_num(), want.nan_to_num())


@needs_bf16_gemm
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


@needs_bf16_gemm
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
    assert not fastpath.available() and not fastpath.gemm_available()
    assert fastpath.describe()["quantizer"] == "pytorch reference"
    assert fastpath.ENV_DISABLE in fastpath.describe()["fast_path_reason"]


def test_a_forced_build_must_exist_and_run_here(monkeypatch):
    monkeypatch.setenv(fastpath.ENV_ISA, "avx1024")
    assert not fastpath.available()
    assert "not one of" in fastpath.describe()["fast_path_reason"]
    monkeypatch.setenv(fastpath.ENV_ISA, "baseline")
    if "baseline" in RUNNABLE:
        assert not fastpath.gemm_available()
        assert fastpath.describe()["quantized_gemm"] == "fp32 matmul on grid values"


def test_cpu_flags_choose_the_best_runnable_build(monkeypatch):
    monkeypatch.setattr(fastpath.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(fastpath, "cpu_flags", lambda: frozenset({"sse2", "avx2", "fma"}))
    assert [isa.name for isa in fastpath.runnable_isas()] == ["avx2", "baseline"]
    monkeypatch.setattr(fastpath, "cpu_flags", lambda: frozenset({"sse2"}))
    assert [isa.name for isa in fastpath.runnable_isas()] == ["baseline"]
    monkeypatch.setattr(fastpath.platform, "machine", lambda: "riscv64")
    assert fastpath.runnable_isas() == []


def test_packing_through_a_quantized_layer_matches_the_reference(kernel_build, monkeypatch):
    """A whole quantized layer, forward and backward, on each build against TQPINN_NO_FAST:
    the packing is bit-identical, so with the same FP32 GEMMs (no bf16 kernel) so is
    everything."""
    spec = dataclasses.replace(PRESETS["smx_paper"], fast=False)

    def layer() -> tuple[torch.Tensor, ...]:
        # fresh tensors each time: quantizations are cached by tensor identity
        x = _data((96, 256), 5).requires_grad_()
        w = (_data((64, 256), 6) / 64).requires_grad_()
        y = gemm(x, w, spec)
        return (y.detach(), *torch.autograd.grad(y, (x, w), _data((96, 64), 7)))

    fast = layer()
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    reference = layer()
    assert all(torch.equal(a, b) for a, b in zip(fast, reference, strict=True))


def test_the_slow_path_note_names_what_runs_and_why(monkeypatch):
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    note = fastpath.slow_path_note()
    assert "pytorch reference" in note and fastpath.ENV_DISABLE in note and "\n" not in note
    monkeypatch.delenv(fastpath.ENV_DISABLE)
    if fastpath.gemm_available():
        assert fastpath.slow_path_note() is None


def test_a_quantized_run_logs_the_slow_path_once(monkeypatch, tmp_path, capsys):
    from tqpinn.train.config import config_from_dict
    from tqpinn.train.trainer import train

    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")
    tiny = {
        "model": {"widths": [8]},
        "estimator": {"name": "stein", "pairs": 2},
        "train": {"steps": 1, "points": {"interior": 4, "boundary": 4}, "eval_points": 16},
    }
    summary = train(
        config_from_dict({**tiny, "quant": "smx_paper"}), tmp_path / "q", progress_bar=False
    )
    assert capsys.readouterr().err.count("note: quantized GEMMs run as") == 1
    assert summary["kernels"]["quantizer"] == "pytorch reference"
    train(config_from_dict(tiny), tmp_path / "f", progress_bar=False)
    assert "note:" not in capsys.readouterr().err
