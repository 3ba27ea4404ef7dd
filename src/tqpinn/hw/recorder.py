"""Record a :class:`~tqpinn.hw.trace.Trace` from a real training step, by hooks, not by hand.

Three hooks run during the step:
- ``tqpinn.qops.observe_gemms``: every GEMM through qops, with phase, shape and operand formats;
- a ``TorchDispatchMode``: every ATen operator that executes. Matmuls issued from inside qops are
  already reported by qops and are skipped here; any other matmul is recorded as an *unrouted*
  GEMM (a bypass of qops: neither quantized nor observable, which a test should catch). All
  other operators become element-wise records with element and byte counts;
- global optimizer step hooks, which mark the optimizer phase.
The dispatch mode also applies torch's FLOP counter (``torch.utils.flop_counter.flop_registry``,
the formulas behind ``FlopCounterMode``) to every operator it sees, so that the trace's GEMM FLOPs
can be checked against torch's own count of the same execution. (``FlopCounterMode`` itself
cannot be used: its module tracker rejects ``torch.autograd.grad`` with respect to a leaf input,
which autodiff PINN losses do.)

Which part of tqpinn issued an operator (its ``kind``) is read from the Python call stack: the
innermost frame inside the tqpinn package names it. Operators run by the autograd engine for
built-in backward formulas have no tqpinn frame; they are of kind "autograd" (and code outside
tqpinn that runs in the forward phase, e.g. a user's loss, of kind "other").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import tqpinn
from tqpinn import qops
from tqpinn.hw.opclass import does_work, op_class
from tqpinn.hw.trace import ElementwiseRecord, GemmRecord, Trace

_PACKAGE_DIR = PurePath(tqpinn.__file__).parent
_TORCH_OPTIM_DIR = PurePath(torch.__file__).parent / "optim"
_AUTOGRAD_ENGINE_ENTRY = PurePath(torch.__file__).parent / "autograd" / "graph.py"

KINDS: tuple[tuple[str, str], ...] = (
    ("qops.py", "quantize"),
    ("formats.py", "quantize"),
    ("quant/", "quantize"),
    ("nn/activations.py", "activation"),
    ("nn/", "layer"),
    ("derivatives/", "derivative"),
    ("pdes/", "residual"),
    ("train/", "loss"),
)
"""(path inside the tqpinn package, kind): the first prefix that matches a frame's file wins."""

GEMM_OPS = frozenset({"mm", "addmm", "bmm", "baddbmm", "mv", "addmv", "dot", "_int_mm"})


def _gemm_shape(op: str, args: tuple[Any, ...]) -> tuple[int, int, int, int]:
    """(batch, m, n, k) of a dispatcher-level matmul."""
    if op in ("addmm", "baddbmm", "addmv"):
        args = args[1:]  # the added term comes first
    a, b = args[0], args[1]
    if op in ("mv", "addmv"):
        return 1, a.shape[0], 1, a.shape[1]
    if op == "dot":
        return 1, 1, 1, a.shape[0]
    if op in ("bmm", "baddbmm"):
        return a.shape[0], a.shape[1], b.shape[2], a.shape[2]
    return 1, a.shape[0], b.shape[1], a.shape[1]


def _format_of(t: torch.Tensor) -> tuple[str, int]:
    name = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16"}.get(
        t.dtype, str(t.dtype).removeprefix("torch.")
    )
    return name, t.element_size() * 8


def _issuer() -> str | None:
    """The tqpinn sub-path of the innermost tqpinn frame (outside tqpinn.hw), or "optim".

    None when the autograd engine issued the operator for a built-in backward formula: the walk
    stops at the engine's Python entry point, above which frames only show who called backward.
    """
    frame = sys._getframe(1)
    while frame is not None:
        path = PurePath(frame.f_code.co_filename)
        if path == _AUTOGRAD_ENGINE_ENTRY:
            return None
        if path.is_relative_to(_PACKAGE_DIR):
            rel = path.relative_to(_PACKAGE_DIR).as_posix()
            if not rel.startswith("hw/"):
                return rel
        elif path.is_relative_to(_TORCH_OPTIM_DIR):
            return "optim"
        frame = frame.f_back
    return None


def _kind(issuer: str | None, phase: str) -> str:
    if issuer is None:
        return "autograd" if phase == "backward" else "other"
    if issuer == "optim":
        return "optimizer"
    return next((kind for prefix, kind in KINDS if issuer.startswith(prefix)), "other")


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(tree) if isinstance(t, torch.Tensor)]


def _unique_bytes(tensors: list[torch.Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


class _OpRecorder(TorchDispatchMode):
    """Records every executed ATen operator of the step (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.gemms: list[GemmRecord] = []
        self.elementwise: list[ElementwiseRecord] = []
        self.in_optimizer = False
        self.flop_counter = 0

    def _phase(self) -> str:
        if self.in_optimizer:
            return "optimizer"
        return "forward" if torch._C._current_autograd_node() is None else "backward"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count_flops = flop_registry.get(func.overloadpacket)
        if count_flops is not None:
            self.flop_counter += int(count_flops(*args, **kwargs, out_val=out))
        op = func.overloadpacket.__name__
        if func.is_view or not does_work(op):
            return out
        phase = self._phase()
        kind = _kind(_issuer(), phase)
        if op in GEMM_OPS:
            if kind != "quantize":
                self._record_unrouted_gemm(op, args, phase, kind)
            return out
        self._record_elementwise(op, kind, phase, args, kwargs, out)
        return out

    def _record_unrouted_gemm(self, op: str, args: tuple[Any, ...], phase: str, kind: str) -> None:
        batch, m, n, k = _gemm_shape(op, args)
        operands = args[1:] if op in ("addmm", "baddbmm", "addmv") else args
        a_fmt, a_bits = _format_of(operands[0])
        b_fmt, b_bits = _format_of(operands[1])
        record = GemmRecord(
            phase, m, n, k, a_fmt, b_fmt, a_bits, b_bits, None, routed=False, kind=kind
        )
        self.gemms.extend([record] * batch)

    def _record_elementwise(
        self,
        op: str,
        kind: str,
        phase: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        out: Any,
    ) -> None:
        inputs = _tensors((args, kwargs))
        outputs = _tensors(out)
        if not outputs and op.endswith("_") and inputs:
            # In-place foreach ops return nothing: what they write is their first argument.
            outputs = _tensors(args[0])
        per_arg = [sum(t.numel() for t in _tensors(a)) for a in (*args, *kwargs.values())]
        elements = max([sum(t.numel() for t in outputs), *per_arg, 0])
        self.elementwise.append(
            ElementwiseRecord(
                op=op,
                op_class=op_class(op),
                kind=kind,
                phase=phase,
                elements=elements,
                bytes_read=_unique_bytes(inputs),
                bytes_written=_unique_bytes(outputs),
            )
        )


def record_step(step: Callable[[], Any], meta: dict[str, Any] | None = None) -> Trace:
    """Run ``step()`` once under the hooks and return its trace.

    ``step`` is a complete training step (forward, loss, backward, optimizer update).
    """
    qops_gemms: list[GemmRecord] = []

    def on_gemm(e: qops.GemmEvent) -> None:
        qops_gemms.append(GemmRecord(**vars(e)))

    recorder = _OpRecorder()

    def enter_optimizer(*_: Any) -> None:
        recorder.in_optimizer = True

    def leave_optimizer(*_: Any) -> None:
        recorder.in_optimizer = False

    pre = register_optimizer_step_pre_hook(enter_optimizer)
    post = register_optimizer_step_post_hook(leave_optimizer)
    try:
        with qops.observe_gemms(on_gemm), recorder:
            step()
    finally:
        pre.remove()
        post.remove()
    return Trace(
        gemms=qops_gemms + recorder.gemms,
        elementwise=recorder.elementwise,
        meta=dict(meta or {}),
        flop_counter=recorder.flop_counter,
    )
