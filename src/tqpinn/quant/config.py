"""The ``quant`` section of a run config, typed: a preset name, or changes to a ``base`` preset.

    quant: smx_paper                      # a preset (tqpinn.quant.spec.PRESETS)
    quant:                                # changes to a base preset, by GEMM operand role
      base: smx_paper
      wgrad.grad_output: {format: smx_int12, rounding: stochastic}
      fwd.weight: {bits: 6, block: [8, 8]}
      dgrad.weight: fp32
      seed: 3

Validated once, by pydantic, at the edge; :meth:`QuantConfig.build` then makes a fresh
:class:`~tqpinn.quant.spec.QuantSpec` (its own stochastic-rounding generator) that cannot fail.
The config serializes back to exactly the value it was given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from tqpinn.errors import UserError
from tqpinn.formats import ELEMENTS, FORMATS, ROUNDINGS, BlockFormat
from tqpinn.quant.spec import PRESETS, ROLES, Operand, QuantSpec, make_preset

FP32 = "fp32"
FORMAT_NAMES = sorted([FP32, *FORMATS])
"""What a role may name: a format of tqpinn.formats.FORMATS, or fp32 (not quantized)."""


class _Keyed(BaseModel):
    """Frozen; an unknown key is refused with the list of the known ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            known = [f.alias or name for name, f in cls.model_fields.items()]
            unknown = sorted(str(k) for k in set(value) - set(known))
            if unknown:
                raise ValueError(f"unknown keys {unknown}; choose from {known}")
        return value


def _format_name(name: Any) -> Any:
    if isinstance(name, str) and name not in FORMAT_NAMES:
        raise ValueError(f"unknown number format {name!r}; choose from {FORMAT_NAMES}")
    return name


def _block(value: Any) -> Any:
    """[rows, cols] of positive integers -> (rows, cols); 'tensor' or null -> None."""
    if value is None or value == "tensor":
        return None
    pair = isinstance(value, list | tuple) and len(value) == 2
    if not pair or not all(isinstance(b, int) and not isinstance(b, bool) for b in value):
        raise ValueError(f"block must be [rows, cols] or 'tensor', got {value!r}")
    if min(value) < 1:
        raise ValueError(f"block must be two positive integers [rows, cols], got {list(value)}")
    return tuple(value)


FormatName = Annotated[str, BeforeValidator(_format_name)]


class OperandConfig(_Keyed):
    """One role: a named ``format``, or a custom one by ``bits``/``block``/``element``."""

    format: FormatName | None = None
    bits: Annotated[int, Field(strict=True, ge=2, le=16)] | None = None
    """Element bits: 2..16 for integer elements, 8 for the FP8 ones."""
    block: Annotated[tuple[int, int] | None, BeforeValidator(_block)] = None
    """[rows, cols] of one shared scale, or 'tensor' (one scale for the whole tensor)."""
    element: Literal[*ELEMENTS] = "int"
    rounding: Literal[*ROUNDINGS] = "nearest_even"

    @model_validator(mode="after")
    def _one_way_to_name_a_format(self) -> OperandConfig:
        custom = self.model_fields_set & {"bits", "block", "element"}
        if self.format is not None and custom:
            raise ValueError("give either 'format' or bits/block/element, not both")
        if self.format is None and self.bits is None:
            raise ValueError("a custom format needs 'bits' (and 'block')")
        if self.format is None and self.element != "int" and self.bits != 8:
            raise ValueError(f"element {self.element!r} has 8 bits, got bits={self.bits}")
        return self

    def operand(self) -> Operand:
        if self.format == FP32:
            return Operand(None, self.rounding)
        if self.format is not None:
            return Operand(FORMATS[self.format], self.rounding)
        return Operand(BlockFormat(self.bits, self.block, self.element), self.rounding)


def _role(value: Any) -> Any:
    """A role given as a format name is that format, rounded to nearest even."""
    return {"format": _format_name(value)} if isinstance(value, str) else value


RoleConfig = Annotated[OperandConfig | None, BeforeValidator(_role)]


class QuantConfig(_Keyed):
    """Quantization of a run; ``build()`` makes its spec (None: FP32)."""

    base: str = FP32
    """The preset that the other keys change (tqpinn.quant.spec.PRESETS)."""
    fwd_input: RoleConfig = Field(None, alias="fwd.input")
    fwd_weight: RoleConfig = Field(None, alias="fwd.weight")
    dgrad_grad_output: RoleConfig = Field(None, alias="dgrad.grad_output")
    dgrad_weight: RoleConfig = Field(None, alias="dgrad.weight")
    wgrad_grad_output: RoleConfig = Field(None, alias="wgrad.grad_output")
    wgrad_input: RoleConfig = Field(None, alias="wgrad.input")
    store_activations: Annotated[bool, Field(strict=True)] | None = None
    fast: Annotated[bool, Field(strict=True)] | None = None
    tf32: Annotated[bool, Field(strict=True)] | None = None
    seed: Annotated[int, Field(strict=True, ge=0, lt=2**63)] | None = None
    _given: str | dict[str, Any] = PrivateAttr(default=FP32)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_the_given_value(cls, value: Any, handler: Any) -> QuantConfig:
        if isinstance(value, QuantConfig):
            return value
        if isinstance(value, str):
            config = handler({"base": _preset_name(value)})
        elif isinstance(value, dict):
            config = handler(value)
        else:
            raise ValueError(f"expected a preset name or a mapping, got {value!r}")
        config._given = value
        return config

    @field_validator("base", mode="before")
    @classmethod
    def _base_is_a_preset(cls, name: Any) -> Any:
        return _preset_name(name)

    @model_serializer
    def _as_given(self) -> str | dict[str, Any]:
        return self._given

    @property
    def given(self) -> str | dict[str, Any]:
        """The value as written in the config: a preset name or the mapping of changes."""
        return self._given

    def __str__(self) -> str:
        return str(self._given)

    def __eq__(self, other: object) -> bool:
        """Equal to a config of the same fields, or to the value it was given (a preset name
        or a mapping), so that ``config.quant == "smx_paper"`` reads as written."""
        if isinstance(other, QuantConfig):
            return super().__eq__(other)  # fields and the given value
        return self._given == other

    __hash__ = None

    def build(self) -> QuantSpec | None:
        """A fresh spec with its own stochastic-rounding generator; None when nothing is
        quantized (FP32)."""
        if isinstance(self._given, str):
            return make_preset(self.base)
        changes: dict[str, Any] = {
            role.replace(".", "_"): change.operand()
            for role, change in self.roles().items()
            if change is not None
        }
        settings = {
            "store_activations": self.store_activations,
            "fast": self.fast,
            "tf32": self.tf32,
        }
        settings["seed"] = self.seed
        changes |= {key: value for key, value in settings.items() if value is not None}
        base = make_preset(self.base) or QuantSpec(FP32)
        spec = replace(base, name=f"{self.base}+custom", **changes)
        if all(spec.role(r).fmt is None for r in ROLES):
            return None
        return spec

    def roles(self) -> dict[str, OperandConfig | None]:
        """Role (:data:`~tqpinn.quant.spec.ROLES`) -> its change (None: the base's)."""
        return {
            "fwd.input": self.fwd_input,
            "fwd.weight": self.fwd_weight,
            "dgrad.grad_output": self.dgrad_grad_output,
            "dgrad.weight": self.dgrad_weight,
            "wgrad.grad_output": self.wgrad_grad_output,
            "wgrad.input": self.wgrad_input,
        }


def _preset_name(name: Any) -> Any:
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown quant preset {name!r}; choose from {sorted(PRESETS)}")
    return name


def parse_quant(value: str | dict[str, Any]) -> QuantConfig:
    """A ``quant`` value checked outside a whole config; UserError naming the bad key."""
    try:
        return QuantConfig.model_validate(value)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(["quant", *(str(p) for p in first["loc"])])
        message = first["msg"].removeprefix("Value error, ")
        if repr(first["input"]) not in message:
            message += f" (got {first['input']!r})"
        raise UserError(f"{key}: {message}") from None
