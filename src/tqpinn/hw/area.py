"""Area proxy of a PINTA-like design: multiplier bricks, vector lanes and SRAM bit cells, in mm².

    bricks:  rows · cols · bricks_per_pe · A_brick · (node / ref)²
    vector:  lanes · A_lane · (node / ref)²
    sram:    buffer_bytes · 8 · A_bitcell · (node / ref_sram)² / array_efficiency

It ranks design points of a sweep by what they add; it is no layout estimate (no wiring,
accumulators, control or I/O). Constants and their sources: ``area_default.yaml``.
"""

from __future__ import annotations

from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat

from tqpinn.errors import UserError
from tqpinn.hw.hardware import Hardware, unsourced

AREA_FILE = "area_default.yaml"
DEFAULT_BRICKS_PER_PE = 16
"""The default description's PE: 16 4x4-bit multiplier bricks (pinta_default.yaml, modes)."""


class AreaModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brick_um2: PositiveFloat
    vector_lane_um2: PositiveFloat
    sram_bitcell_um2: PositiveFloat
    sram_reference_node_nm: PositiveFloat
    sram_array_efficiency: PositiveFloat
    reference_node_nm: PositiveFloat
    sources: dict[str, str]

    def area_mm2(self, hw: Hardware, bricks_per_pe: int) -> dict[str, float]:
        """Area per component and ``total``, in mm², of ``hw`` with ``bricks_per_pe``."""
        node = hw.technology.node_nm
        logic = (node / self.reference_node_nm) ** 2 * 1e-6
        cell = (node / self.sram_reference_node_nm) ** 2 * 1e-6
        parts = {
            "bricks": hw.array.rows * hw.array.cols * bricks_per_pe * self.brick_um2 * logic,
            "vector": hw.vector.lanes * self.vector_lane_um2 * logic,
            "sram": hw.sram.buffer_bytes
            * 8
            * self.sram_bitcell_um2
            * cell
            / self.sram_array_efficiency,
        }
        return parts | {"total": sum(parts.values())}


def load_area_model() -> AreaModel:
    """The packaged area constants (every one sourced)."""
    data = yaml.safe_load(resources.files("tqpinn.hw").joinpath(AREA_FILE).read_text())
    missing = unsourced(data)
    if missing:
        raise UserError(f"{AREA_FILE}: constants without a source: {missing}")
    return AreaModel.model_validate(data)
