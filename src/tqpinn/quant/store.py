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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from tqpinn.formats import PackedTensor, pack, unpack
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
    src: torch.Tensor, op: Operand, transposed: bool, generator: torch.Generator | None
) -> PackedTensor:
    """pack(as_matrix(src)ᵀ if transposed else as_matrix(src)), cached by the identity of src.

    A hit needs the same live tensor object at the same version (no in-place change since).
    """
    key = (id(src), transposed, op)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is src and hit[1] == src._version:
        _cache.move_to_end(key)
        return hit[2]
    m = as_matrix(src.detach())
    p = pack(m.T if transposed else m, op.fmt, op.rounding, generator)
    _cache[key] = (weakref.ref(src, lambda _: _cache.pop(key, None)), src._version, p)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return p


def quantized_values(
    src: torch.Tensor, op: Operand, transposed: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """The matrix of src (transposed if asked) on op's grid, as floats; FP32 passes through."""
    if op.fmt is None:
        m = as_matrix(src)
        return m.T if transposed else m
    return unpack(packed(src, op, transposed, generator))


def clear_cache() -> None:
    _cache.clear()


@dataclass(frozen=True)
class Stored:
    """A saved tensor kept packed: ``data`` holds its matrix (or the transpose, if
    ``transposed``); unpacking restores ``shape``."""

    data: PackedTensor
    transposed: bool
    shape: torch.Size

    def load(self) -> torch.Tensor:
        m = unpack(self.data)
        return (m.T if self.transposed else m).reshape(self.shape)


def _load(item: Stored | torch.Tensor) -> torch.Tensor:
    return item.load() if isinstance(item, Stored) else item


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
) -> Stored | torch.Tensor:
    if op.fmt is None or not t.is_floating_point():
        record(t)
        return t
    stored = Stored(packed(t, op, transposed, generator), transposed, t.shape)
    record(stored.data)
    return stored


@dataclass(frozen=True)
class Keep:
    """How a GEMM keeps one operand for backward: quantized by ``op``, transposed or not."""

    op: Operand
    transposed: bool


@contextlib.contextmanager
def gemm_storage(
    a: torch.Tensor, b: torch.Tensor, keep_a: Keep, keep_b: Keep, generator: torch.Generator | None
) -> Iterator[None]:
    """Saved-tensor storage for one GEMM A·Bᵀ: A and B, saved by the GEMM's autograd Function,
    are stored as ``keep_a`` / ``keep_b`` say (packed, through the shared cache)."""

    def save(t: torch.Tensor) -> Stored | torch.Tensor:
        for src, keep in ((a, keep_a), (b, keep_b)):
            if t is src:
                return _store(t, keep.op, keep.transposed, generator)
        record(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(save, _load):
        yield


def _is_parameter(t: torch.Tensor) -> bool:
    return isinstance(t, torch.nn.Parameter)


@contextlib.contextmanager
def stored_activations(op: Operand, generator: torch.Generator | None) -> Iterator[None]:
    """While active, floating-point tensors that operations save for backward (activation
    outputs, inputs) are stored packed in ``op``'s format; parameters and integer tensors are
    kept as they are."""

    def save(t: torch.Tensor) -> Stored | torch.Tensor:
        if _is_parameter(t) or t.dim() == 0:
            record(t)
            return t
        return _store(t, op, False, generator)

    with torch.autograd.graph.saved_tensors_hooks(save, _load):
        yield
