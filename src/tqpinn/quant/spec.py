"""QuantSpec: which format each operand of each GEMM is quantized to, and the presets.

The three products of a GEMM Y = X·Wᵀ (X the input (M, K), W the weight (N, K)) and their roles:
    forward  Y  = Q[fwd.input](X)          · Q[fwd.weight](W)ᵀ
    dgrad    dX = Q[dgrad.grad_output](dY) · Q[dgrad.weight](Wᵀ)ᵀ
    wgrad    dW = Q[wgrad.grad_output](dYᵀ) · Q[wgrad.input](Xᵀ)ᵀ
Every operand is quantized in the orientation in which the product reduces over its last axis
(that is what a 1 x 32 MX block runs along); a square block gives the same values either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch

from tqpinn.errors import UserError
from tqpinn.formats import MX_INT8, MX_INT12, ROUNDINGS, SMX_INT8, SMX_INT12, BlockFormat

ROLES = (
    "fwd.input",
    "fwd.weight",
    "dgrad.grad_output",
    "dgrad.weight",
    "wgrad.grad_output",
    "wgrad.input",
)


@dataclass(frozen=True)
class Operand:
    """How one GEMM operand is quantized: a format (None: kept in FP32) and a rounding."""

    fmt: BlockFormat | None
    rounding: str = "nearest_even"

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise UserError(f"unknown rounding {self.rounding!r}; choose from {ROUNDINGS}")

    @property
    def name(self) -> str:
        return "fp32" if self.fmt is None else self.fmt.name


FP32_OPERAND = Operand(None)


@dataclass(frozen=True)
class QuantSpec:
    """Formats of the six GEMM operand roles, and what happens around the GEMMs.

    store_activations: tensors that non-GEMM operations inside the model (activation functions)
    save for backward are stored packed in the fwd.input format instead of FP32 (their compute,
    like biases and the loss, stays FP32). fast: run products whose operands are all exact in
    bfloat16 through the exact bf16 kernel (tqpinn.quant.fastpath) where available.
    tf32: on CUDA, run products whose operands are both exact in TF32 on the TF32 tensor cores
    (exact products, FP32 sums: tqpinn.quant.tf32); no effect on the CPU or on FP32 operands.
    seed: seeds the generator of stochastic rounding.
    """

    name: str
    fwd_input: Operand = FP32_OPERAND
    fwd_weight: Operand = FP32_OPERAND
    dgrad_grad_output: Operand = FP32_OPERAND
    dgrad_weight: Operand = FP32_OPERAND
    wgrad_grad_output: Operand = FP32_OPERAND
    wgrad_input: Operand = FP32_OPERAND
    store_activations: bool = True
    fast: bool = True
    tf32: bool = False
    seed: int = 0
    _generator: torch.Generator = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_generator", torch.Generator().manual_seed(self.seed))

    def role(self, role: str) -> Operand:
        """The operand of ``role`` (one of :data:`ROLES`)."""
        return getattr(self, role.replace(".", "_"))

    def with_roles(self, **roles: Operand) -> QuantSpec:
        """A copy with some roles replaced; keys use underscores (``fwd_input=...``). The copy
        shares this spec's stochastic-rounding generator (a fresh one would repeat its draws)."""
        copy = replace(self, **roles)
        object.__setattr__(copy, "_generator", self._generator)
        return copy

    @property
    def generator(self) -> torch.Generator:
        """The spec's stochastic-rounding generator (checkpointed by the trainer)."""
        return self._generator

    def describe(self) -> dict[str, str]:
        """role -> "format/rounding", for logs and metrics."""
        return {r: f"{self.role(r).name}/{self.role(r).rounding}" for r in ROLES}


def _uniform(name: str, act: BlockFormat, grad: BlockFormat) -> QuantSpec:
    a, g = Operand(act), Operand(grad)
    return QuantSpec(name, a, a, g, a, g, a)


PRESETS: dict[str, QuantSpec | None] = {
    "fp32": None,
    # The paper's recipe: 4x4 SMX blocks, INT8 weights and activations, INT12 gradients.
    "smx_paper": _uniform("smx_paper", SMX_INT8, SMX_INT12),
    # OCP-MX-style baseline: 1x32 blocks along each product's reduction axis, INT8 / INT12.
    "mx_int8": _uniform("mx_int8", MX_INT8, MX_INT12),
}
"""Named specs; None is FP32 (no quantization)."""


def make_preset(name: str) -> QuantSpec | None:
    """A fresh spec (its own stochastic-rounding generator) of the preset ``name``; None is
    FP32. Unknown names raise UserError listing the presets."""
    if name not in PRESETS:
        raise UserError(f"unknown quant preset {name!r}; choose from {sorted(PRESETS)}")
    spec = PRESETS[name]
    return None if spec is None else replace(spec)


def resolve_quant(value: str | dict[str, Any] | QuantSpec | None) -> QuantSpec | None:
    """A fresh spec for a config's ``quant`` value (see :mod:`tqpinn.quant.config`); a spec or
    None (FP32) is returned as it is. For callers outside a run; a run builds its spec once
    from its typed config (``config.quant.build()``)."""
    if value is None or isinstance(value, QuantSpec):
        return value
    from tqpinn.quant.config import parse_quant  # the typed config is built on this module

    return parse_quant(value).build()
