"""Quantize a whole model from outside: GEMM specs on every layer, packed activation storage."""

from __future__ import annotations

import contextlib
from typing import Any

from torch import nn

from tqpinn.nn.layer import set_quant
from tqpinn.quant import store
from tqpinn.quant.spec import QuantSpec

_HOOKS_ATTR = "_tqpinn_quant_hooks"


def apply_quant(model: nn.Module, spec: QuantSpec | None) -> nn.Module:
    """Give every GEMM layer ``spec`` (None: FP32) and, when ``spec.store_activations``, store
    what the model's other operations save for backward packed in the fwd.input format during
    ``model(...)`` calls, on plain tensors and on stream bundles alike (DiffQuant's difference
    streams go through the same ``__call__``). Calling it again replaces the previous setting.
    Returns ``model``.
    """
    set_quant(model, spec)
    for handle in getattr(model, _HOOKS_ATTR, ()):
        handle.remove()
    handles = ()
    if spec is not None and spec.store_activations and spec.fwd_input.fmt is not None:
        open_contexts: list[contextlib.AbstractContextManager] = []

        def enter(module: nn.Module, args: Any) -> None:
            context = store.stored_activations(spec.fwd_input, spec.generator)
            context.__enter__()
            open_contexts.append(context)

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            open_contexts.pop().__exit__(None, None, None)

        handles = (
            model.register_forward_pre_hook(enter),
            model.register_forward_hook(leave, always_call=True),
        )
    object.__setattr__(model, _HOOKS_ATTR, handles)
    return model
