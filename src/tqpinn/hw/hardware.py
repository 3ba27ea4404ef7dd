"""PINTA's parameters: a typed, validated description read from YAML, every constant sourced.

The YAML holds on-chip energies at a *reference* technology node (the node of the published
table they come from) and the model scales them to the target node by a stated rule
(:meth:`Technology.energy_scale`). A ``sources`` mapping gives, for every numeric parameter (or a
section that contains it), where the number comes from; loading fails if one is missing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from tqpinn.errors import UserError
from tqpinn.hw.opclass import OP_CLASSES
from tqpinn.hw.yaml_file import read_yaml_file

DEFAULT_HARDWARE = "pinta_default.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Technology(_Strict):
    node_nm: PositiveFloat
    vdd_v: PositiveFloat
    reference_node_nm: PositiveFloat
    reference_vdd_v: PositiveFloat

    @property
    def energy_scale(self) -> float:
        """Dynamic energy C·V² with switched capacitance proportional to feature size:
        E_target = E_ref · (node / node_ref) · (V / V_ref)²."""
        return (self.node_nm / self.reference_node_nm) * (self.vdd_v / self.reference_vdd_v) ** 2


class ArrayParams(_Strict):
    rows: PositiveInt
    cols: PositiveInt
    dataflow: Literal["ws", "os", "is", "auto"]
    """Stationary operand; "auto" picks the fastest per GEMM (a reconfigurable array)."""
    weight_load_overlap: bool
    """Double-buffered stationary registers: the next fold loads while the current one streams."""
    accumulator_bits: PositiveInt


class MultiplierMode(_Strict):
    """One precision mode of the scalable MAC: operands up to (a_bits x b_bits)."""

    a_bits: PositiveInt
    b_bits: PositiveInt
    integer: bool
    macs_per_pe_cycle: PositiveFloat
    multiply_pj: PositiveFloat
    accumulate_pj: PositiveFloat


class BlockExponent(_Strict):
    exponent_add_pj: PositiveFloat
    align_shift_pj: PositiveFloat


class VectorUnit(_Strict):
    lanes: PositiveInt
    fused: bool
    """Element-wise chains stream between GEMMs on chip: their tensors never spill to DRAM."""
    cycles_per_element: dict[str, PositiveFloat]
    energy_pj_per_element: dict[str, NonNegativeFloat]


class Quantizer(_Strict):
    elements_per_cycle: PositiveInt
    energy_pj_per_element: PositiveFloat


class Sram(_Strict):
    buffer_bytes: PositiveInt
    bandwidth_bytes_per_cycle: PositiveFloat
    energy_pj_per_byte: PositiveFloat


class Dram(_Strict):
    bandwidth_bytes_per_s: PositiveFloat
    energy_pj_per_bit: PositiveFloat


class Schedule(_Strict):
    tile_points: PositiveInt | None
    """Collocation points processed per tile through forward and backward; None: the whole
    batch layer by layer."""


class Hardware(_Strict):
    """A PINTA-like accelerator. Energies in pJ at the reference node unless named otherwise."""

    name: str
    clock_hz: PositiveFloat
    technology: Technology
    array: ArrayParams
    modes: dict[str, MultiplierMode] = Field(min_length=1)
    block_exponent: BlockExponent
    vector: VectorUnit
    quantizer: Quantizer
    sram: Sram
    dram: Dram
    schedule: Schedule
    static_power_w: float = Field(ge=0)
    sources: dict[str, str]


def _numeric_paths(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, bool) or not isinstance(data, (dict, int, float)):
        return []
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _numeric_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def unsourced(data: dict[str, Any]) -> list[str]:
    """Numeric parameters with no source entry for themselves or any enclosing section."""
    sources = data.get("sources", {})
    missing = []
    for path in _numeric_paths({k: v for k, v in data.items() if k != "sources"}):
        parts = path.split(".")
        if not any(".".join(parts[:i]) in sources for i in range(1, len(parts) + 1)):
            missing.append(path)
    return missing


def hardware_from_dict(data: Any, origin: str = "<hardware>") -> Hardware:
    """Validate a hardware description; raises UserError naming the bad key."""
    if not isinstance(data, dict):
        raise UserError(f"{origin}: a hardware description must be a mapping")
    try:
        hw = Hardware.model_validate(data)
    except ValidationError as err:
        errors = err.errors()
        # An unknown key is usually a typo of a required one: name it first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise UserError(f"{origin}: unknown hardware key {key!r}") from None
        raise UserError(f"{origin}: hardware key {key!r}: {first['msg']}") from None
    missing = unsourced(data)
    if missing:
        raise UserError(f"{origin}: parameters without a source in 'sources': {missing}")
    for table in ("cycles_per_element", "energy_pj_per_element"):
        given = getattr(hw.vector, table)
        absent = sorted(set(OP_CLASSES) - set(given))
        if absent:
            raise UserError(
                f"{origin}: vector.{table} lacks op classes {absent}; "
                f"it needs one entry per class of {list(OP_CLASSES)}"
            )
    if not any(not m.integer for m in hw.modes.values()):
        raise UserError(f"{origin}: 'modes' needs a floating-point fallback mode (integer: false)")
    return hw


def load_hardware(path: Path | None = None) -> Hardware:
    """The hardware in ``path``, or the packaged default PINTA description."""
    if path is None:
        text = resources.files("tqpinn.hw").joinpath(DEFAULT_HARDWARE).read_text()
        return hardware_from_dict(yaml.safe_load(text), DEFAULT_HARDWARE)
    data = read_yaml_file(path, "hardware file")
    return hardware_from_dict(data, str(path))
