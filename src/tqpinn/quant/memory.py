"""Measured memory of the tensors a training step saves for backward, at real bit widths.

Every tensor autograd saves passes through saved-tensor hooks: tqpinn's own (packed operands,
counted at their format's widths: 8.5 bits per INT8 element of a 4x4 block) or a recording one
(anything else, counted at its dtype's width). Storage shared by several saves counts once.
This is the activation memory at the turn from forward to backward, the step's peak.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tqpinn.formats import PackedTensor
from tqpinn.quant import store

OUTSIDE = "(outside)"
"""Attribution of tensors saved outside the model's forward (estimator, loss)."""
ROOT = "(model)"
"""Attribution of tensors saved by the model's own forward code, outside any submodule."""


@dataclass
class SavedBytes:
    """Bytes saved for backward during one step.

    per_module: bytes by the module that first saved them (dotted name, or ROOT / OUTSIDE);
    total: their sum; parameter_bytes: saved references to parameters, not in the total (they
    add no memory); packed_bytes / plain_bytes: the total split into tqpinn-packed and plain
    tensors.
    """

    per_module: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    parameter_bytes: float = 0.0
    packed_bytes: float = 0.0
    plain_bytes: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "packed": self.packed_bytes,
            "plain": self.plain_bytes,
            "parameter_refs": self.parameter_bytes,
            "per_module": dict(self.per_module),
        }


class _Recorder:
    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.stack: list[str] = []
        self.seen: set[tuple[str, int]] = set()
        self.alive: list[object] = []  # holds what was counted, so no address is reused
        self.bits: dict[str, int] = defaultdict(int)
        self.result = SavedBytes()

    def __call__(self, item: torch.Tensor | PackedTensor) -> None:
        if isinstance(item, PackedTensor):
            key, bits, kind = ("packed", id(item)), item.nbits, "packed"
        else:
            storage = item.untyped_storage()
            key, bits, kind = ("storage", storage.data_ptr()), storage.nbytes() * 8, "plain"
            if key[1] in self.params:
                kind = "parameter"
        if key in self.seen or bits == 0:
            return
        self.seen.add(key)
        self.alive.append(item)
        if kind == "parameter":
            self.result.parameter_bytes += bits / 8
            return
        where = self.stack[-1] if self.stack else OUTSIDE
        self.bits[where] += bits
        if kind == "packed":
            self.result.packed_bytes += bits / 8
        else:
            self.result.plain_bytes += bits / 8

    def finish(self) -> SavedBytes:
        self.result.per_module = {k: v / 8 for k, v in sorted(self.bits.items())}
        self.result.total = sum(self.result.per_module.values())
        self.alive.clear()
        return self.result


def saved_bytes(step_fn: Callable[[], Any], model: nn.Module) -> SavedBytes:
    """Run ``step_fn`` (forward and backward of one step) and measure what it saves for
    backward, attributed to the modules of ``model`` by forward hooks: every ``module(...)``
    call, on tensors or on stream bundles, saves under the innermost module's name."""
    recorder = _Recorder(model)
    handles = []
    for name, module in model.named_modules():
        label = name or ROOT

        def enter(module: nn.Module, args: Any, label: str = label) -> None:
            recorder.stack.append(label)

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            recorder.stack.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    try:
        with store.recording(recorder):
            step_fn()
    finally:
        for handle in handles:
            handle.remove()
    return recorder.finish()
