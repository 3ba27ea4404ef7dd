"""The exact fast path: quantization in one pass on every CPU, bfloat16 GEMMs where the CPU has them.

Arithmetic semantics (docs/quantization.md): an INT8 block value m·2^e (|m| ≤ 127) is exact in
bfloat16 and the product of two bfloat16 values is exact in FP32, so the bf16 GEMM computes
exactly the products the fake-quant reference computes and differs from it only in the order of
its FP32 additions (and in flushing subnormal inputs and outputs to zero, as VDPBF16PS does).
Products with a wider operand (INT12 gradients) stay FP32 GEMMs on grid values: their products
(at most 12 + 8 significant bits) are exact in FP32 as well.

The kernels are C (kernels.c beside this file), compiled on first use with the system C compiler
into a per-user cache and called through ctypes. They are built for the best instruction set the
CPU has (:data:`ISAS`, first match): the quantizer and unpacker are plain loops the compiler
vectorises for that set (AVX-512, AVX2 with FMA, or the baseline: SSE2 on x86-64, NEON on
aarch64), and the bf16 GEMM exists only where the CPU has AVX512-BF16. Every build quantizes bit
for bit as the PyTorch reference (tests/test_quant_fastpath.py runs each build the CPU can run).
Without a C compiler the library uses the reference implementation; :func:`describe` says which
path runs and why.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from tqpinn import machine
from tqpinn.formats import BlockFormat, PackedTensor
from tqpinn.quant import compiled

SOURCE = Path(__file__).with_name("kernels.c")
COMMON_FLAGS = (
    "-O3", "-fPIC", "-shared", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
    "-ffp-contract=off",  # no fused multiply-adds: each operation rounds as PyTorch's does
)  # fmt: skip


@dataclass(frozen=True)
class Isa:
    """One build of the kernels: the CPU flags it needs, its compiler flags, whether it has the
    bf16 GEMM."""

    name: str
    cpu_flags: frozenset[str]
    cflags: tuple[str, ...]
    bf16_gemm: bool
    machines: frozenset[str] = frozenset({"x86_64"})


ISAS: tuple[Isa, ...] = (
    Isa(
        "avx512_bf16",
        frozenset({"avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx2", "fma"}),
        ("-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16", "-mavx2", "-mfma"),
        True,
    ),
    Isa("avx2", frozenset({"avx2", "fma"}), ("-mavx2", "-mfma"), False),
    Isa("baseline", frozenset(), (), False, frozenset({"x86_64", "aarch64", "arm64"})),
)
"""Builds, best first; a CPU runs the first whose flags it has."""
ISAS_BY_NAME = {isa.name: isa for isa in ISAS}

ENV_DISABLE = "TQPINN_NO_FAST"
"""Set to 1 to force the PyTorch reference implementation (tests of the fallback use it)."""
ENV_ISA = "TQPINN_FAST_ISA"
"""Set to a name of :data:`ISAS` to use that build instead of the best one (it must run here)."""

_i64, _ptr, _int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of this CPU (read once)."""
    return machine.cpu_flags()


def runnable_isas() -> list[Isa]:
    """The builds this CPU can run, best first."""
    machine, flags = platform.machine(), cpu_flags()
    return [isa for isa in ISAS if machine in isa.machines and isa.cpu_flags <= flags]


def chosen_isa() -> tuple[Isa | None, str]:
    """The build to use and why (the reason names what is missing when there is none)."""
    return _choose(os.environ.get(ENV_DISABLE, ""), os.environ.get(ENV_ISA, ""))


@functools.cache
def _choose(disable: str, forced: str) -> tuple[Isa | None, str]:
    # Cached per setting of the two variables: every quantized operand asks, several times.
    if disable not in ("", "0"):
        return None, f"{ENV_DISABLE} is set"
    runnable = runnable_isas()
    if not runnable:
        return None, f"no kernel build for {platform.machine()}"
    if not forced:
        return runnable[0], "best build for this CPU"
    if forced not in ISAS_BY_NAME:
        return None, f"{ENV_ISA}={forced!r} is not one of {sorted(ISAS_BY_NAME)}"
    if ISAS_BY_NAME[forced] not in runnable:
        return None, f"{ENV_ISA}={forced!r} needs CPU flags this CPU lacks"
    return ISAS_BY_NAME[forced], f"{ENV_ISA} is set"


def _cache_dir() -> Path:
    root = os.environ.get("TQPINN_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root) / "tqpinn" if root else Path.home() / ".cache" / "tqpinn"


@functools.cache
def _library(isa: Isa) -> ctypes.CDLL | None:
    flags = [*COMMON_FLAGS, *isa.cflags]
    source = SOURCE.read_bytes()
    tag = hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:16]
    lib_path = _cache_dir() / f"tqpinn_kernels_{isa.name}_{tag}.so"
    if not lib_path.exists():
        lib_path.parent.mkdir(parents=True, exist_ok=True)
        compiler = os.environ.get("CC", "cc")
        with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
            out = Path(tmp) / lib_path.name
            try:
                subprocess.run(
                    [compiler, *flags, str(SOURCE), "-o", str(out), "-lm"],
                    check=True,
                    capture_output=True,
                )
            except (OSError, subprocess.CalledProcessError):
                return None
            out.replace(lib_path)  # atomic: concurrent processes never see a partial file
    lib = ctypes.CDLL(str(lib_path))
    lib.tq_quantize.argtypes = [_ptr, _i64, _i64, _i64, _int, _int, _int, ctypes.c_float,
                                _ptr, _ptr, _int, _ptr, _ptr]  # fmt: skip
    lib.tq_unpack.argtypes = [_ptr, _int, _ptr, _i64, _i64, _int, _int, _ptr, _ptr]
    lib.tq_set_threads.argtypes = [_int]
    lib.tq_difference.argtypes = [_int, _ptr, _ptr, _i64, _i64, _i64, _int, _ptr]
    lib.tq_difference_backward.argtypes = [_int, _ptr, _ptr, _ptr, _i64, _i64, _i64, _int,
                                           _ptr, _ptr]  # fmt: skip
    lib.tq_difference_streams.argtypes = [_int, _ptr, _ptr, _ptr, _i64, _i64, _i64, _int,
                                          _ptr, _ptr, _ptr, _ptr]  # fmt: skip
    lib.tq_difference_streams_backward.argtypes = [_int, _ptr, _ptr, _ptr, _ptr, _ptr, _i64,
                                                   _i64, _i64, _int, _ptr, _ptr, _ptr]  # fmt: skip
    functions = [lib.tq_quantize, lib.tq_unpack, lib.tq_set_threads, lib.tq_difference,
                 lib.tq_difference_backward, lib.tq_difference_streams,
                 lib.tq_difference_streams_backward]  # fmt: skip
    if isa.bf16_gemm:
        lib.tq_gemm.argtypes = [_i64, _i64, _i64, _ptr, _i64, _i64, _ptr, _i64, _i64, _ptr, _i64]
        functions.append(lib.tq_gemm)
    for fn in functions:
        fn.restype = None
    return lib


def _active() -> tuple[Isa | None, ctypes.CDLL | None]:
    isa, _ = chosen_isa()
    return (None, None) if isa is None else (isa, _library(isa))


def available() -> bool:
    """True when the compiled quantizer and unpacker can run here."""
    return _active()[1] is not None


def gemm_available() -> bool:
    """True when the exact bf16 GEMM kernel can run here (AVX512-BF16 builds)."""
    isa, lib = _active()
    return lib is not None and isa.bf16_gemm


def slow_path_note() -> str | None:
    """One line for a quantized run's log when the fastest path (the bf16 GEMM) does not run
    here, saying what runs instead and why; None when it runs."""
    path = describe()
    if path["fastest_available"]:
        return None
    return (
        f"note: quantized GEMMs run as {path['quantized_gemm']} with the {path['quantizer']} "
        f"({path['fast_path_reason']}; the bf16 GEMM kernel needs an AVX512-BF16 CPU): exact "
        "results, slower steps"
    )


def describe() -> dict[str, str | bool]:
    """Which quantizer and GEMM path runs here, and why: for logs and every timing record
    (CUDA tensors: ``cuda_quantizer``, see :mod:`tqpinn.quant.compiled`)."""
    isa, reason = chosen_isa()
    if isa is not None and _library(isa) is None:
        isa, reason = None, f"the C compiler ({os.environ.get('CC', 'cc')}) failed or is missing"
    return {
        "quantizer": "pytorch reference" if isa is None else f"fused C kernel ({isa.name})",
        "quantized_gemm": "bf16 kernel (avx512_bf16)"
        if isa is not None and isa.bf16_gemm
        else "fp32 matmul on grid values",
        "fast_path_reason": reason,
        "fastest_available": isa is not None and isa == ISAS[0],
        **compiled.describe(),
    }


def library() -> ctypes.CDLL:
    """The active kernel library, set to PyTorch's thread count (call only when available)."""
    lib = _active()[1]
    lib.tq_set_threads(torch.get_num_threads())
    return lib


def _addr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def can_quantize(m: torch.Tensor, fmt: BlockFormat, rounding: str) -> bool:
    """Whether :func:`quantize_matrix` handles this matrix, format and rounding."""
    return (
        m.dtype == torch.float32
        and m.device.type == "cpu"
        and m.dim() == 2
        and m.numel() > 0
        and fmt.element == "int"
        and fmt.block is not None
        and rounding == "nearest_even"
        and available()
    )


def quantize_matrix(
    m: torch.Tensor,
    fmt: BlockFormat,
    transposed: bool = False,
    packed: bool = True,
    values: bool = False,
    bf16: bool = False,
) -> tuple[PackedTensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Quantize mᵀ (if transposed) or m, FP32 (R, C), nearest-even, in one pass; returns the
    packed form, the FP32 grid values and the bfloat16 values (≤ 8-bit elements), each if asked.

    A transposed quantization runs in m's own layout with the transposed block shape and
    returns transposed views, so nothing is copied.
    """
    if transposed:
        p, v, b = quantize_matrix(m, fmt.transposed(), False, packed, values, bf16)
        p = None if p is None else PackedTensor(p.elements.T, p.exponents.T, fmt, p.dtype)
        return p, None if v is None else v.T, None if b is None else b.T
    if m.stride(1) != 1 or m.stride(0) < m.shape[1]:
        m = m.contiguous()
    rows, cols = m.shape
    pr, pc = min(fmt.block[0], rows), min(fmt.block[1], cols)
    small = fmt.bits <= 8
    exps = torch.empty(-(-rows // pr), -(-cols // pc), dtype=torch.int8)
    elements = torch.empty(rows, cols, dtype=torch.int8 if small else torch.int16)
    out_v = torch.empty(rows, cols) if values else None
    out_b = torch.empty(rows, cols, dtype=torch.bfloat16) if bf16 and small else None
    library().tq_quantize(m.data_ptr(), rows, cols, m.stride(0), pr, pc, fmt.emax, fmt.max_element,
                          exps.data_ptr(), _addr(elements if packed else None), 1 if small else 2,
                          _addr(out_v), _addr(out_b))  # fmt: skip
    p = PackedTensor(elements, exps, fmt, m.dtype) if packed else None
    return p, out_v, out_b


def _physical(p: PackedTensor) -> tuple[PackedTensor, bool]:
    """A row-contiguous packed matrix with p's values, and whether p is its transpose."""
    e = p.elements
    if e.is_contiguous() and p.exponents.is_contiguous():
        return p, False
    if e.T.is_contiguous() and p.exponents.T.is_contiguous():
        return PackedTensor(e.T, p.exponents.T, p.fmt.transposed(), p.dtype), True
    return PackedTensor(e.contiguous(), p.exponents.contiguous(), p.fmt, p.dtype), False


def can_unpack(p: PackedTensor) -> bool:
    return (
        p.dtype == torch.float32
        and p.elements.device.type == "cpu"
        and p.fmt.element == "int"
        and p.fmt.block is not None
        and p.elements.dim() == 2
        and p.elements.numel() > 0
        and available()
    )


def unpack_matrix(
    p: PackedTensor, values: bool = True, bf16: bool = False
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(FP32 values, bfloat16 values) of a packed matrix, each only if asked (bfloat16 only for
    elements of at most 8 bits, where it is exact)."""
    q, transposed = _physical(p)
    rows, cols = q.elements.shape
    pr, pc = min(q.fmt.block[0], rows), min(q.fmt.block[1], cols)
    out_v = torch.empty(rows, cols) if values else None
    out_b = torch.empty(rows, cols, dtype=torch.bfloat16) if bf16 and q.fmt.bits <= 8 else None
    library().tq_unpack(q.elements.data_ptr(), q.elements.element_size(), q.exponents.data_ptr(),
                        rows, cols, pr, pc, _addr(out_v), _addr(out_b))  # fmt: skip
    if transposed:
        return tuple(None if t is None else t.T for t in (out_v, out_b))
    return out_v, out_b


def gemm_bf16(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) · b (N, K)ᵀ -> FP32 (M, N) for bfloat16 a and b of any strides: exact
    products, FP32 sums."""
    m, k = a.shape
    n = b.shape[0]
    out = torch.empty(m, n)
    library().tq_gemm(m, n, k, a.data_ptr(), *a.stride(), b.data_ptr(), *b.stride(),
                      out.data_ptr(), out.stride(0))  # fmt: skip
    return out
