"""The compiled quantizer against the PyTorch reference, bit for bit: compiled for the CPU here
(Inductor's C++ backend, the same tracing and fusion that make the Triton kernels on CUDA) and
on the device where CUDA exists. Compiling takes seconds per format and padding pattern, so one
format runs by default and every named format under ``-m slow``."""

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tqpinn.formats import FORMATS, SMX_INT8, BlockFormat, PackedTensor, pack, quantize, unpack
from tqpinn.quant import compiled, fastpath, store
from tqpinn.quant.spec import Operand
from tqpinn.studies.cuda_bench import SECTIONS, CudaCases, bench_cuda, quantizer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

Case = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def _wide(shape, g):
    """Gaussian values whose magnitude varies by 2^±20 from row to row."""
    scale = torch.exp2(torch.randint(-20, 21, (*shape[:-1], 1), generator=g).float())
    return torch.randn(shape, generator=g) * scale


def _halves(shape, g):
    """Multiples of 1/2 up to ±255: where a block's maximum is ≥ 128 (INT8: scale 2, elements
    x/2) or lies in [64, 128) (scale 1), odd halves or odd integers are ties."""
    return torch.randint(-510, 511, shape, generator=g).float() / 2


def _signed_zeros(shape, g):
    return torch.where(torch.rand(shape, generator=g) < 0.5, 0.0, -0.0)


def _nonfinite(shape, g):
    x = _wide(shape, g)
    u = torch.rand(shape, generator=g)
    x[u < 0.03] = math.nan
    x[(u >= 0.03) & (u < 0.05)] = math.inf
    x[(u >= 0.05) & (u < 0.07)] = -math.inf
    return x


CASES: dict[str, Case] = {
    "wide": _wide,
    "ties": _halves,
    "zeros": _signed_zeros,
    "all_equal": lambda shape, g: torch.full(shape, 0.7),
    # block maxima at the top of the exponent range: scale 2^(127 − emax)
    "max_magnitude": lambda shape, g: torch.randn(shape, generator=g).sign() * 3.4028235e38,
    "near_max": lambda shape, g: torch.randn(shape, generator=g) * 1e38,
    # subnormal block maxima: the exponent clamps to −126
    "subnormal": lambda shape, g: torch.randn(shape, generator=g) * 1e-40,
    "smallest_normal": lambda shape, g: torch.randn(shape, generator=g) * 2.0**-126,
    "nonfinite": _nonfinite,
}


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The bit pattern (NaN payloads and signed zeros included) as integers of the same width."""
    by_width = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    return t.view(by_width[t.element_size()])


def _assert_same_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(_bits(got.cpu()), _bits(want.cpu()))


def _check_all_paths(x: torch.Tensor, fmt: BlockFormat) -> None:
    """Compiled quantize, pack and unpack of x against the reference, bit for bit."""
    _assert_same_bits(compiled.quantize_compiled(x, fmt), quantize(x, fmt))
    p, ref = compiled.pack_compiled(x, fmt), pack(x, fmt)
    assert p.fmt == fmt and p.dtype == x.dtype
    _assert_same_bits(p.elements, ref.elements)
    _assert_same_bits(p.exponents, ref.exponents)
    _assert_same_bits(compiled.unpack_compiled(ref), unpack(ref))


def test_compiled_quantize_is_the_reference_on_edge_blocks_and_any_size():
    """SMX INT8 (the paper's format): every edge case on a ragged matrix, then other sizes with
    the same padding pattern served by the same compiled kernel (no recompilation)."""
    g = torch.Generator().manual_seed(0)
    for case in CASES.values():
        x = case((37, 70), g)
        _assert_same_bits(compiled.quantize_compiled(x, SMX_INT8), quantize(x, SMX_INT8))
    with torch.compiler.set_stance("fail_on_recompile"):
        for shape in [(41, 66), (101, 258)]:
            x = _wide(shape, g)
            _assert_same_bits(compiled.quantize_compiled(x, SMX_INT8), quantize(x, SMX_INT8))


def test_compiled_rounding_is_half_to_even():
    """A 4x4 block with maximum 127 has scale 1 in INT8: x.5 goes to the even neighbour (in a
    matrix of the size above, so the kernel compiled there serves it)."""
    x = torch.zeros(37, 70)
    x[0, :4] = torch.tensor([127.0, 2.5, 3.5, -2.5])
    x[1, :4] = torch.tensor([-0.5, 0.5, 1.5, 126.5])
    got = compiled.quantize_compiled(x, SMX_INT8)
    assert got[0, :4].tolist() == [127.0, 2.0, 4.0, -2.0]
    assert _bits(got[1, :4]).tolist() == _bits(torch.tensor([-0.0, 0.0, 2.0, 126.0])).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_compiles_to_the_reference(name):
    """Every named format: quantize, pack and unpack of every edge case, several sizes (ragged,
    exact multiples of the block, smaller than a block, one row, a batch of matrices) and both
    orientations (the transpose of a matrix, and the format with rows and columns swapped)."""
    fmt = FORMATS[name]
    g = torch.Generator().manual_seed(1)
    for case in CASES.values():
        _check_all_paths(case((37, 70), g), fmt)
    for shape in [(64, 96), (3, 2), (1, 45), (2, 37, 70)]:
        _check_all_paths(_nonfinite(shape, g), fmt)
    x = _nonfinite((70, 37), g)
    _check_all_paths(x.T, fmt)  # a transposed view: other strides
    _check_all_paths(x, fmt.transposed())


def test_cpu_tensors_keep_their_paths():
    """The CPU never dispatches to the compiled quantizer: the C kernels (or the reference)
    keep every CPU result as it was."""
    x = torch.randn(8, 8)
    assert not compiled.can_quantize(x, SMX_INT8, "nearest_even")
    assert not compiled.can_unpack(pack(x, SMX_INT8))
    assert "CUDA tensors only" in compiled.unavailable_reason("cpu")


def test_the_switch_and_the_record(monkeypatch):
    monkeypatch.setenv(compiled.ENV_DISABLE, "1")
    assert compiled.unavailable_reason("cuda") == f"{compiled.ENV_DISABLE} is set"
    assert not compiled.compiled_available("cuda")
    described = fastpath.describe()
    assert described["cuda_quantizer"] == "pytorch reference"
    assert described["cuda_quantizer_reason"] == f"{compiled.ENV_DISABLE} is set"


def test_store_dispatches_where_the_compiled_quantizer_applies(monkeypatch):
    """Where compiled.can_quantize / can_unpack say yes (CUDA), the store packs, quantizes and
    decodes through the compiled functions; here they are stand-ins that record their calls."""
    monkeypatch.setenv(fastpath.ENV_DISABLE, "1")  # the C kernels would take CPU tensors first
    calls: list[str] = []

    def recorded(name: str, fn: Callable) -> Callable:
        def call(*args):
            calls.append(name)
            return fn(*args)

        return call

    monkeypatch.setattr(compiled, "can_quantize", lambda x, fmt, rounding: True)
    monkeypatch.setattr(compiled, "can_unpack", lambda p: True)
    monkeypatch.setattr(compiled, "pack_compiled", recorded("pack", pack))
    monkeypatch.setattr(compiled, "quantize_compiled", recorded("quantize", quantize))
    monkeypatch.setattr(compiled, "unpack_compiled", recorded("unpack", unpack))
    op = Operand(BlockFormat(8, (1, 32)), "nearest_even")
    x = torch.randn(40, 70)
    p = store.packed(x, op, True, None)
    assert isinstance(p, PackedTensor) and torch.equal(p.elements, pack(x.T, op.fmt).elements)
    grid = store.grid_values(x, op, False, None)
    assert torch.equal(grid.values, quantize(x, op.fmt))
    assert torch.equal(store.values(p), unpack(pack(x.T, op.fmt)))
    assert calls == ["pack", "quantize", "unpack"]


needs_cuda = pytest.mark.skipif(
    not compiled.compiled_available("cuda"), reason=str(compiled.unavailable_reason("cuda"))
)
CUDA_FORMATS = ["smx_int8", "smx_int12", "mx_int8", "mx_int12", "smx_e4m3", "tensor_int8"]


@needs_cuda
@pytest.mark.parametrize("name", CUDA_FORMATS)
def test_compiled_on_cuda_is_the_reference(name):
    """On the device: the Triton kernels against the reference on the device and on the CPU."""
    fmt = FORMATS[name]
    g = torch.Generator().manual_seed(2)
    for case in CASES.values():
        x = case((37, 70), g)
        _check_all_paths(x.cuda(), fmt)
        _assert_same_bits(compiled.quantize_compiled(x.cuda(), fmt), quantize(x, fmt))
    for shape in [(256, 512), (1000, 33)]:
        x = _nonfinite(shape, g).cuda()
        _check_all_paths(x, fmt)
        _check_all_paths(x.T, fmt)


@needs_cuda
def test_store_on_cuda_takes_the_compiled_quantizer():
    op = Operand(SMX_INT8, "nearest_even")
    x = torch.randn(300, 70, device="cuda")
    assert compiled.can_quantize(x, op.fmt, op.rounding)
    p = store.packed(x, op, True, None)
    ref = pack(x.T, op.fmt)
    _assert_same_bits(p.elements, ref.elements)
    _assert_same_bits(p.exponents, ref.exponents)
    _assert_same_bits(store.values(p), unpack(ref))


@pytest.mark.slow
def test_the_gpu_script_checks_and_times_the_compiled_quantizer():
    """The quantizer section of benchmarks/bench_cuda.py, run on the CPU: every check holds and
    every path is timed (the C kernels too, where they take the matrix)."""
    result = quantizer(["mx_int8"], (64, 96), "cpu", rounds=1)
    r = result["mx_int8"]
    assert r["bit_identical"] == {"quantize": True, "pack": True, "unpack": True}
    timed = {f"{path}_{op}" for path in ("reference", "compiled") for op in r["bit_identical"]}
    if fastpath.available():
        timed |= {f"c_kernel_{op}" for op in r["bit_identical"]}
    assert set(r["median_seconds"]) == timed
    assert all(s > 0 for s in r["median_seconds"].values())


def test_the_gpu_script_runs_the_sections_asked_for():
    cases = CudaCases(quantizer_formats=(), quantizer_shape=(4, 4))
    result = bench_cuda(CONFIGS, "cpu", cases=cases, only=["quantizer"])
    assert result["quantizer"]["dispatch"] == compiled.describe("cpu")
    assert result["settings"]["kernels"] == fastpath.describe()
    assert not set(SECTIONS[1:]) & set(result)
    with pytest.raises(ValueError, match=r"unknown sections \['smoek'\]; choose from"):
        bench_cuda(CONFIGS, "cpu", cases=cases, only=["smoek"])
