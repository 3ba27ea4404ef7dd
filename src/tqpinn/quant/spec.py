"""QuantSpec: which format each operand of each GEMM is quantized to; presets and config parsing.

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
from tqpinn.formats import get_format as _named_format

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

SPEC_KEYS = ("base", *ROLES, "store_activations", "fast", "seed")
OPERAND_KEYS = ("format", "bits", "block", "element", "rounding")


def _operand(key: str, value: Any) -> Operand:
    """A role value: a format name ("smx_int12", "fp32") or a mapping with ``format`` or
    ``bits``/``block``/``element``, and optionally ``rounding``."""
    if isinstance(value, str):
        return FP32_OPERAND if value == "fp32" else Operand(_format(key, value))
    if not isinstance(value, dict):
        raise UserError(f"quant.{key}: expected a format name or a mapping, got {value!r}")
    unknown = sorted(set(value) - set(OPERAND_KEYS))
    if unknown:
        raise UserError(f"quant.{key}: unknown keys {unknown}; choose from {list(OPERAND_KEYS)}")
    try:
        return Operand(_custom_format(key, value), value.get("rounding", "nearest_even"))
    except UserError as err:
        message = str(err)
        prefixed = message if message.startswith("quant.") else f"quant.{key}: {message}"
        raise UserError(prefixed) from None


def _custom_format(key: str, value: dict[str, Any]) -> BlockFormat | None:
    if "format" in value:
        if set(value) & {"bits", "block", "element"}:
            raise UserError(f"quant.{key}: give either 'format' or bits/block/element, not both")
        return None if value["format"] == "fp32" else _format(key, value["format"])
    if "bits" not in value:
        raise UserError(f"quant.{key}: a custom format needs 'bits' (and 'block')")
    block = value.get("block")
    if not (block in (None, "tensor") or isinstance(block, list | tuple)):
        raise UserError(f"quant.{key}: block must be [rows, cols] or 'tensor', got {block!r}")
    return BlockFormat(
        value["bits"],
        None if block in (None, "tensor") else tuple(block),
        value.get("element", "int"),
    )


def _format(key: str, name: str) -> BlockFormat:
    try:
        return _named_format(name)
    except UserError as err:
        raise UserError(f"quant.{key}: {err}") from None


def _preset(name: Any) -> QuantSpec | None:
    if not isinstance(name, str) or name not in PRESETS:
        raise UserError(f"unknown quant preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


def make_preset(name: str) -> QuantSpec | None:
    """A fresh spec (its own stochastic-rounding generator) of the preset ``name``; None is
    FP32. Unknown names raise UserError listing the presets."""
    spec = _preset(name)
    return None if spec is None else replace(spec)


def resolve_quant(value: str | dict[str, Any] | QuantSpec | None) -> QuantSpec | None:
    """The spec for a config's ``quant`` value: a preset name, or a mapping of changes to a
    ``base`` preset (default fp32) with keys among :data:`SPEC_KEYS`. None means FP32."""
    if value is None or isinstance(value, QuantSpec):
        return value
    if isinstance(value, str):
        return _preset(value)
    if not isinstance(value, dict):
        raise UserError(f"quant: expected a preset name or a mapping, got {value!r}")
    unknown = sorted(set(value) - set(SPEC_KEYS))
    if unknown:
        raise UserError(f"quant: unknown keys {unknown}; choose from {list(SPEC_KEYS)}")
    base = _preset(value.get("base", "fp32")) or QuantSpec("fp32")
    changes: dict[str, Any] = {
        r.replace(".", "_"): _operand(r, value[r]) for r in ROLES if r in value
    }
    for key, kind in (("store_activations", bool), ("fast", bool), ("seed", int)):
        if key in value:
            if not isinstance(value[key], kind) or (kind is int and isinstance(value[key], bool)):
                raise UserError(f"quant.{key}: expected {kind.__name__}, got {value[key]!r}")
            changes[key] = value[key]
    spec = replace(base, name=f"{value.get('base', 'fp32')}+custom", **changes)
    if all(spec.role(r).fmt is None for r in ROLES):
        return None
    return spec
