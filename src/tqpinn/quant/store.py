"""Quantized operands and where tensors saved for backward live.

One quantization of a tensor serves every use that asks for the same format in the same
orientation: the forward GEMM, the copy the GEMM saves for its weight gradient, and the copy an
activation function saves for its own backward. An identity-keyed cache makes that sharing real
(one packed object, counted once), and saved-tensor hooks store the packed form instead of FP32.

Saved tensors are handled as matrices: a tensor (..., F) is flattened to (rows, F) before
blocking, as the GEMM that consumes it sees it.
"""

from __future__ import annotations

import contextlib
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from tqpinn.formats import BlockFormat, PackedTensor, pack, quantize, unpack
from tqpinn.quant import compiled, fastpath
from tqpinn.quant.spec import Operand

CACHE_SIZE = 4
"""Cached quantizations: an operand is reused within the next few GEMM calls or saves. An entry
also leaves the cache when its source tensor is garbage-collected."""

_cache: OrderedDict[tuple, tuple[weakref.ref, int, PackedTensor]] = OrderedDict()

Recorder = Callable[[torch.Tensor | PackedTensor], None]
_recorders: list[Recorder] = []


def as_matrix(t: torch.Tensor) -> torch.Tensor:
    """(..., F) -> (rows, F); a scalar or vector becomes one row."""
    return t.reshape(1, -1) if t.dim() < 2 else t.reshape(-1, t.shape[-1])


def packed(
    src: torch.Tensor,
    op: Operand,
    transposed: bool,
    generator: torch.Generator | None,
    for_product: bool = False,
) -> PackedTensor:
    """pack(as_matrix(src)ᵀ if transposed else as_matrix(src)), cached by the identity of src.

    A hit needs the same live tensor object at the same version (no in-place change since).
    Uses the C kernel on the CPU and the torch.compile'd reference on CUDA where they apply
    (same result as :func:`tqpinn.formats.pack`).
    The form a GEMM reads next comes out of the same pass and waits in _decoded: bfloat16
    values of every untransposed ≤ 8-bit pack where the bf16 kernel runs (such a pack is
    usually a forward operand, often first packed when an activation function saves it), FP32
    values of a ``for_product`` pack where the GEMM is an FP32 matmul (FP32 values of every
    saved tensor would cost a write of 4 bytes per element for tensors no GEMM reads).
    """
    key = (id(src), transposed, op)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is src and hit[1] == src._version:
        _cache.move_to_end(key)
        return hit[2]
    m = as_matrix(src.detach())
    if fastpath.can_quantize(m, op.fmt, op.rounding):
        bf16_gemm = op.fmt.bits <= 8 and fastpath.gemm_available()
        want_bf16 = not transposed and bf16_gemm
        want_values = for_product and not bf16_gemm
        p, values_fp32, bf16 = fastpath.quantize_matrix(
            m, op.fmt, transposed, values=want_values, bf16=want_bf16
        )
        if bf16 is not None:
            _remember(p, "bf16", bf16)
        if values_fp32 is not None:
            _remember(p, "values", values_fp32)
    elif compiled.can_quantize(m, op.fmt, op.rounding):
        p = compiled.pack_compiled(m.T if transposed else m, op.fmt)
    else:
        p = pack(m.T if transposed else m, op.fmt, op.rounding, generator)
    _cache[key] = (weakref.ref(src, lambda _: _cache.pop(key, None)), src._version, p)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return p


@dataclass(frozen=True)
class OnGrid:
    """A float matrix whose values lie on ``fmt``'s grid (a loaded saved operand)."""

    values: torch.Tensor
    fmt: BlockFormat


GemmOperand = PackedTensor | OnGrid | torch.Tensor
"""One side of a product: packed, float values on a grid, or plain FP32."""


def operand(
    src: torch.Tensor, op: Operand, transposed: bool, generator: torch.Generator | None
) -> GemmOperand:
    """src as a product operand: its matrix (transposed if asked) quantized by op."""
    if op.fmt is None:
        m = as_matrix(src)
        return m.T if transposed else m
    return packed(src, op, transposed, generator, for_product=True)


_decoded: OrderedDict[tuple, tuple[PackedTensor, torch.Tensor]] = OrderedDict()
DECODED_SIZE = 2
"""Decoded forms of packed matrices kept for a second use that follows right after: a layer's
bfloat16 operand made while packing, or the FP32 values a weight gradient decoded and the
activation function's backward reads next."""


def _remember(p: PackedTensor, kind: str, t: torch.Tensor) -> None:
    # p is held with t, so the buffer addresses in the key stay valid while the entry lives.
    _decoded[(p.elements.data_ptr(), p.exponents.data_ptr(), kind)] = (p, t)
    if len(_decoded) > DECODED_SIZE:
        _decoded.popitem(last=False)


def _recall(p: PackedTensor, kind: str) -> torch.Tensor | None:
    """A remembered decoded form of p's buffers, in p's orientation (or None)."""
    hit = _decoded.get((p.elements.data_ptr(), p.exponents.data_ptr(), kind))
    if hit is None:
        return None
    q, t = hit
    if q.elements.stride() == p.elements.stride() and q.shape == p.shape:
        return t
    if q.elements.T.stride() == p.elements.stride() and q.shape[::-1] == p.shape:
        return t.T
    return None


def values(x: GemmOperand) -> torch.Tensor:
    """The float values of an operand."""
    if not isinstance(x, PackedTensor):
        return x.values if isinstance(x, OnGrid) else x
    if not fastpath.can_unpack(x):
        return compiled.unpack_compiled(x) if compiled.can_unpack(x) else unpack(x)
    found = _recall(x, "values")
    if found is None:
        found = fastpath.unpack_matrix(x)[0]
        _remember(x, "values", found)
    return found


def grid_values(
    src: torch.Tensor, op: Operand, transposed: bool, generator: torch.Generator | None
) -> GemmOperand:
    """src's matrix (transposed if asked) on op's grid, as float values (not packed, not
    cached): for operands that are used once and never stored, such as gradients."""
    m = as_matrix(src.detach())
    if op.fmt is None:
        return m.T if transposed else m
    if fastpath.can_quantize(m, op.fmt, op.rounding):
        return OnGrid(fastpath.quantize_matrix(m, op.fmt, transposed, False, True)[1], op.fmt)
    if compiled.can_quantize(m, op.fmt, op.rounding):
        return OnGrid(compiled.quantize_compiled(m.T if transposed else m, op.fmt), op.fmt)
    return OnGrid(quantize(m.T if transposed else m, op.fmt, op.rounding, generator), op.fmt)


def transpose(x: GemmOperand) -> GemmOperand:
    """The transpose of an operand whose format is square (values are unchanged)."""
    if isinstance(x, PackedTensor):
        return x.transpose()
    if isinstance(x, OnGrid):
        if not x.fmt.square:
            raise ValueError(f"format {x.fmt.name} is not square: re-quantize instead")
        return OnGrid(x.values.T, x.fmt)
    return x.T


def bf16_operand(x: GemmOperand) -> torch.Tensor | None:
    """x as exact bfloat16 values for the fast (CPU) kernel: FP32 integer block operands of at
    most 8 bits on the CPU; None otherwise or when the kernel is unavailable."""
    if isinstance(x, PackedTensor):
        if x.fmt.bits > 8 or not fastpath.can_unpack(x) or not fastpath.gemm_available():
            return None
        found = _recall(x, "bf16")
        return found if found is not None else fastpath.unpack_matrix(x, False, True)[1]
    if (
        not isinstance(x, OnGrid)
        or x.values.dtype != torch.float32
        or x.values.device.type != "cpu"
    ):
        return None
    if x.fmt.element != "int" or x.fmt.bits > 8 or not fastpath.gemm_available():
        return None
    return x.values.to(torch.bfloat16)  # round to nearest: exact for ≤ 8 significant bits


class Kept(ABC):
    """A saved tensor held as a packed matrix (or the transpose, if ``transposed``); loading
    unpacks it to ``shape``."""

    transposed: bool
    shape: torch.Size

    @abstractmethod
    def matrix(self) -> PackedTensor:
        """The packed matrix (as_matrix of the tensor, or its transpose)."""

    def load(self) -> torch.Tensor:
        m = values(self.matrix())
        return (m.T if self.transposed else m).reshape(self.shape)


@dataclass(frozen=True)
class Stored(Kept):
    """A saved tensor kept packed from the forward on: ``data`` holds its matrix."""

    data: PackedTensor
    transposed: bool
    shape: torch.Size

    def matrix(self) -> PackedTensor:
        return self.data


Recompute = Callable[[], torch.Tensor]
"""Computes a tensor of the forward again in backward, bit for bit, from what is kept."""


@dataclass(eq=False)
class Rebuilt(Kept):
    """A saved tensor not kept but recomputed when backward first asks for it, then packed by
    ``op`` (transposed if asked): the same packed values as storing it, with no storage between
    forward and backward. The packed matrix stays until backward drops this object, so a later
    product that reads it does not recompute it."""

    recompute: Recompute
    op: Operand
    transposed: bool
    shape: torch.Size
    generator: torch.Generator | None
    _matrix: PackedTensor | None = field(default=None, repr=False)

    def matrix(self) -> PackedTensor:
        if self._matrix is None:
            with torch.no_grad():
                t = self.recompute()
            if t.shape != self.shape:
                raise RuntimeError(
                    f"a recomputed operand has shape {tuple(t.shape)}, its forward had "
                    f"{tuple(self.shape)}"
                )
            self._matrix = packed(t, self.op, self.transposed, self.generator)
        return self._matrix


def recomputable(op: Operand) -> bool:
    """Whether a tensor packed by ``op`` may be recomputed instead of stored: packing it again
    gives the same values (a block format with deterministic rounding)."""
    return op.fmt is not None and op.rounding == "nearest_even"


def _load(item: Kept | torch.Tensor) -> torch.Tensor:
    return item.load() if isinstance(item, Kept) else item


def record(item: torch.Tensor | PackedTensor) -> None:
    """Report one stored item to the active memory recorders."""
    for recorder in tuple(_recorders):
        recorder(item)


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    """While active, every tensor or packed tensor saved for backward is passed to
    ``recorder``: those tqpinn packs (here) and any other (through an outer hook that only
    records)."""
    _recorders.append(recorder)

    def keep(t: torch.Tensor) -> torch.Tensor:
        record(t)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(keep, _load):
            yield
    finally:
        _recorders.remove(recorder)


def _store(
    t: torch.Tensor, op: Operand, transposed: bool, generator: torch.Generator | None
) -> Kept | torch.Tensor:
    if op.fmt is None or not t.is_floating_point():
        record(t)
        return t
    # A saved tensor that requires grad is an activation output, usually the next GEMM's input
    # (the tanh output): its FP32 values come out of the same pass for that GEMM. Intermediates
    # a fused function keeps for its own backward (no grad) are only stored.
    for_product = t.requires_grad and not transposed
    stored = Stored(packed(t, op, transposed, generator, for_product), transposed, t.shape)
    record(stored.data)
    return stored


@dataclass(frozen=True)
class Keep:
    """How a GEMM keeps one operand for backward: quantized by ``op``, transposed or not."""

    op: Operand
    transposed: bool


@contextlib.contextmanager
def gemm_storage(
    a: torch.Tensor,
    b: torch.Tensor,
    keep_a: Keep,
    keep_b: Keep,
    generator: torch.Generator | None,
    recompute_a: Recompute | None = None,
) -> Iterator[dict[str, Kept | torch.Tensor]]:
    """Saved-tensor storage for one GEMM A·Bᵀ: A and B, saved by the GEMM's autograd Function,
    are stored as ``keep_a`` / ``keep_b`` say (packed, through the shared cache). With
    ``recompute_a`` (which must give A again, bit for bit) A is not stored but rebuilt when
    backward asks for it, where ``keep_a`` allows that (:func:`recomputable`).

    Yields a dict that receives what was kept under "a" and "b" (the same objects the saved
    variables hold), so that a first-order backward can read the packed operands directly.
    """
    kept: dict[str, Kept | torch.Tensor] = {}
    rebuild_a = recompute_a is not None and recomputable(keep_a.op)

    def save(t: torch.Tensor) -> Kept | torch.Tensor:
        if t is a and rebuild_a:
            kept["a"] = Rebuilt(recompute_a, keep_a.op, keep_a.transposed, t.shape, generator)
            return kept["a"]
        for name, src, keep in (("a", a, keep_a), ("b", b, keep_b)):
            if t is src:
                kept[name] = _store(t, keep.op, keep.transposed, generator)
                return kept[name]
        record(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(save, _load):
        yield kept


def transposed_operand(item: Kept | torch.Tensor) -> GemmOperand:
    """The transpose of a kept matrix, as a product operand, without unpacking it."""
    if isinstance(item, torch.Tensor):
        return as_matrix(item).T
    data = item.matrix()
    return data if item.transposed else data.transpose()


def _is_parameter(t: torch.Tensor) -> bool:
    return isinstance(t, torch.nn.Parameter)


@contextlib.contextmanager
def stored_activations(op: Operand, generator: torch.Generator | None) -> Iterator[None]:
    """While active, floating-point tensors that operations save for backward (activation
    outputs, inputs) are stored packed in ``op``'s format; parameters and integer tensors are
    kept as they are."""

    def save(t: torch.Tensor) -> Kept | torch.Tensor:
        if _is_parameter(t) or t.dim() == 0:
            record(t)
            return t
        return _store(t, op, False, generator)

    with torch.autograd.graph.saved_tensors_hooks(save, _load):
        yield
