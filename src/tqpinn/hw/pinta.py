"""PINTA: cycles and energy of a training-step trace on a precision-scalable systolic accelerator.

Per GEMM (m x k) @ (k x n) with operand formats from the trace (docs/pinta.md has the full list
of equations and the reasons behind them):

- mode: the cheapest multiplier mode whose operand widths cover the GEMM's (integer formats), or
  the floating-point fallback mode; it sets p, the MACs a PE does per cycle;
- compute cycles: :func:`tqpinn.hw.systolic.compute_cycles` with k reduced to ceil(k / p), for
  the configured dataflow (or the fastest of ws/os/is);
- buffer traffic: operand and output passes of that dataflow (:func:`~tqpinn.hw.systolic.
  operand_passes`) times their stored bytes (block exponents included; partial sums at the
  accumulator width);
- DRAM traffic: compulsory streaming: an operand or result larger than a third of the global
  buffer (A, B and the output each get a third) is read from / written to DRAM exactly once
  (tiles of A are reused across all column folds before the next is fetched); smaller ones live
  on chip between the kernels that produce and consume them. A quantized result that streams
  through the fused vector unit and quantizer is stored in its stream's format (INT8
  activations, INT12 gradients), otherwise at the accumulator width;
- schedule: with ``schedule.tile_points`` the step runs a few collocation points at a time
  (forward, residual, backward, weight-gradient accumulation per tile: PINN points are
  independent until the loss sum), so a tensor whose rows are collocation rows (A and result of
  forward and dgrad, both operands of wgrad) spills only if one tile's share of it does not fit;
  weights and weight gradients are whole;
- latency: double buffering overlaps compute and both memories, so the GEMM takes the maximum
  of the three cycle counts (the bound it hits is reported);
- energy: MACs x (multiply + accumulate) of the mode, block-exponent handling once per block
  partial sum, buffer and DRAM bytes at their per-byte / per-bit energies.

Element-wise kernels run on the vector unit: elements x cycles-per-element of their op class /
lanes. With ``vector.fused`` (the default) the element-wise chain between two GEMMs streams
through the unit's registers, so it moves no buffer or DRAM bytes of its own (the tensors it
starts and ends with are GEMM results and operands, charged there); without it, each kernel
also reads and writes its tensors through the buffer (and DRAM, by the spill rule), whichever
takes longer. Quantization is
priced as the hardware quantizer does it, once per quantized GEMM operand element; the software
emulation ops of the trace (kind "quantize") are therefore not costed again. GEMMs, vector work
and quantization run one after another. Static power accrues over the whole step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tqpinn.hw.hardware import Hardware, MultiplierMode
from tqpinn.hw.systolic import Mapping, best_mapping, operand_passes, reduced_k
from tqpinn.hw.trace import ElementwiseRecord, GemmRecord, Trace, is_float_format

ENERGY_COMPONENTS = ("mac", "block_exponent", "sram", "dram", "vector", "quantizer", "static")
PHASE_GROUPS = ("forward", "backward", "optimizer")
"""How energy is grouped for reports: dgrad, wgrad and element-wise backward are "backward"."""


def phase_group(phase: str) -> str:
    if phase in ("forward", "optimizer"):
        return phase
    return "backward"


def select_mode(hw: Hardware, gemm: GemmRecord) -> str:
    """The cheapest integer mode covering both operand widths, else the float fallback."""
    fallback = next(name for name, m in hw.modes.items() if not m.integer)
    if is_float_format(gemm.a_format) or is_float_format(gemm.b_format):
        return fallback
    hi, lo = max(gemm.a_bits, gemm.b_bits), min(gemm.a_bits, gemm.b_bits)
    fitting = [
        (m.a_bits * m.b_bits, name)
        for name, m in hw.modes.items()
        if m.integer and max(m.a_bits, m.b_bits) >= hi and min(m.a_bits, m.b_bits) >= lo
    ]
    return min(fitting)[1] if fitting else fallback


def _block_k(gemm: GemmRecord) -> int:
    """Reduction-axis length of one block partial sum (both operands share its exponents)."""
    if gemm.block is None:
        return gemm.k
    # SMX r x c blocks span c along A's reduction axis; MX (1, 32) spans 32 along it.
    return max(1, min(gemm.block[-1], gemm.k))


@dataclass(frozen=True)
class GemmCost:
    gemm: GemmRecord
    mode: str
    mapping: Mapping
    compute_cycles: int
    sram_bytes: float
    dram_bytes: float
    cycles: float
    bound: str
    energy_pj: dict[str, float]
    peak_macs_per_cycle: float


@dataclass(frozen=True)
class VectorCost:
    record: ElementwiseRecord
    cycles: float
    energy_pj: dict[str, float]


@dataclass
class PintaReport:
    """Cost of one training step (and of a run of ``steps`` steps) on one hardware description."""

    hardware: str
    clock_hz: float
    gemms: list[GemmCost]
    vector: list[VectorCost]
    quantizer_cycles: float
    steps: int = 1
    energy_by_phase: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def gemm_cycles(self) -> float:
        return sum(g.cycles for g in self.gemms)

    @property
    def vector_cycles(self) -> float:
        return sum(v.cycles for v in self.vector)

    @property
    def cycles(self) -> float:
        return self.gemm_cycles + self.vector_cycles + self.quantizer_cycles

    @property
    def seconds(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def energy_breakdown_j(self) -> dict[str, float]:
        out = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
        for per_phase in self.energy_by_phase.values():
            for key, pj in per_phase.items():
                out[key] += pj * 1e-12
        return out

    @property
    def energy_j(self) -> float:
        return sum(self.energy_breakdown_j.values())

    @property
    def array_utilisation(self) -> float:
        """MACs done / MACs the array could do in its GEMM cycles, in each GEMM's mode."""
        capacity = sum(g.cycles * g.peak_macs_per_cycle for g in self.gemms)
        return sum(g.gemm.macs for g in self.gemms) / capacity if capacity else 0.0

    def summary(self) -> dict[str, Any]:
        bounds: dict[str, int] = {}
        for g in self.gemms:
            bounds[g.bound] = bounds.get(g.bound, 0) + 1
        macs_by_mode: dict[str, int] = {}
        for g in self.gemms:
            macs_by_mode[g.mode] = macs_by_mode.get(g.mode, 0) + g.gemm.macs
        return {
            "hardware": self.hardware,
            "step": {
                "cycles": self.cycles,
                "seconds": self.seconds,
                "energy_j": self.energy_j,
                "cycles_breakdown": {
                    "gemm": self.gemm_cycles,
                    "vector": self.vector_cycles,
                    "quantizer": self.quantizer_cycles,
                },
                "energy_breakdown_j": self.energy_breakdown_j,
                "energy_by_phase_j": {
                    p: {k: v * 1e-12 for k, v in comps.items()}
                    for p, comps in self.energy_by_phase.items()
                },
                "array_utilisation": self.array_utilisation,
                "gemm_bounds": bounds,
                "macs_by_mode": macs_by_mode,
            },
            "run": {
                "steps": self.steps,
                "seconds": self.seconds * self.steps,
                "energy_j": self.energy_j * self.steps,
            },
        }


class Pinta:
    """The accelerator model bound to one hardware description."""

    def __init__(self, hw: Hardware) -> None:
        self.hw = hw
        self.scale = hw.technology.energy_scale
        self.spill_bytes = hw.sram.buffer_bytes / 3
        self.dram_bytes_per_cycle = hw.dram.bandwidth_bytes_per_s / hw.clock_hz

    def _spilled(self, nbytes: float, tiles: float = 1.0) -> float:
        """DRAM bytes of a tensor of ``nbytes``: all of it if one tile's share of it does not
        fit in its third of the buffer, else none."""
        return nbytes if nbytes / tiles > self.spill_bytes else 0.0

    def tiles(self, trace: Trace) -> float:
        """How many tiles the step's collocation points are processed in (see ``schedule``).

        A tile takes ``tile_points`` points of every condition, so the condition with the fewest
        points bounds the count from below: counting that many tiles never understates a tile's
        share of a tensor, whichever condition its rows come from.
        """
        points = trace.meta.get("points", {})
        tile = self.hw.schedule.tile_points
        if tile is None or not points:
            return 1.0
        return max(1.0, min(points.values()) / tile)

    def _memory_cycles(self, sram_bytes: float, dram_bytes: float) -> tuple[float, float]:
        return (
            sram_bytes / self.hw.sram.bandwidth_bytes_per_cycle,
            dram_bytes / self.dram_bytes_per_cycle,
        )

    def _stored_output_bytes(self, gemm: GemmRecord, mode: MultiplierMode) -> float:
        """Bytes of the result as it is kept for its consumers.

        Fused into the vector unit and quantizer, a quantized layer's result is stored in the
        format of the stream it continues (this GEMM's A operand: activations stay INT8,
        gradients INT12); otherwise at the accumulator width.
        """
        if self.hw.vector.fused and mode.integer:
            return gemm.m * gemm.n * gemm.operand_bits("a") / 8
        return gemm.m * gemm.n * self.hw.array.accumulator_bits / 8

    def gemm_cost(self, gemm: GemmRecord, tiles: float = 1.0) -> GemmCost:
        """Cost of one GEMM; ``tiles``: the number of point tiles the step runs in (tensors
        whose rows are collocation rows are split over them, weights are not)."""
        hw, arr = self.hw, self.hw.array
        mode_name = select_mode(hw, gemm)
        mode: MultiplierMode = hw.modes[mode_name]
        k_eff = reduced_k(gemm.k, mode.macs_per_pe_cycle)
        mapping, compute = best_mapping(
            gemm.m, gemm.n, k_eff, arr.rows, arr.cols, arr.weight_load_overlap, arr.dataflow
        )
        a_passes, b_passes, out_passes = operand_passes(mapping, arr.rows, arr.cols)
        psum_bytes = gemm.m * gemm.n * arr.accumulator_bits / 8
        sram = a_passes * gemm.bytes_a + b_passes * gemm.bytes_b + out_passes * psum_bytes
        dram = (
            self._spilled(gemm.bytes_a, tiles)
            + self._spilled(gemm.bytes_b, tiles if gemm.phase == "wgrad" else 1.0)
            + self._spilled(
                self._stored_output_bytes(gemm, mode), 1.0 if gemm.phase == "wgrad" else tiles
            )
        )
        sram_cycles, dram_cycles = self._memory_cycles(sram, dram)
        cycles, bound = max(
            (compute, "compute"), (sram_cycles, "sram"), (dram_cycles, "dram"), key=lambda c: c[0]
        )
        block_sums = (
            gemm.m * gemm.n * math.ceil(gemm.k / _block_k(gemm))
            if gemm.block is not None and mode.integer
            else 0
        )
        be = hw.block_exponent
        energy = {
            "mac": gemm.macs * (mode.multiply_pj + mode.accumulate_pj) * self.scale,
            "block_exponent": block_sums * (be.exponent_add_pj + be.align_shift_pj) * self.scale,
            "sram": sram * hw.sram.energy_pj_per_byte * self.scale,
            "dram": dram * 8 * hw.dram.energy_pj_per_bit,
        }
        return GemmCost(
            gemm,
            mode_name,
            mapping,
            compute,
            sram,
            dram,
            cycles,
            bound,
            energy,
            arr.rows * arr.cols * mode.macs_per_pe_cycle,
        )

    def vector_cost(self, record: ElementwiseRecord) -> VectorCost:
        hw = self.hw
        lane_cycles = record.elements * hw.vector.cycles_per_element[record.op_class]
        if hw.vector.fused:
            # Operands stream from the GEMM output pipeline; intermediates stay in registers.
            sram = dram = 0.0
        else:
            sram = float(record.bytes_moved)
            dram = self._spilled(record.bytes_read) + self._spilled(record.bytes_written)
        sram_cycles, dram_cycles = self._memory_cycles(sram, dram)
        cycles = max(lane_cycles / hw.vector.lanes, sram_cycles, dram_cycles)
        energy = {
            "vector": record.elements
            * hw.vector.energy_pj_per_element[record.op_class]
            * self.scale,
            "sram": sram * hw.sram.energy_pj_per_byte * self.scale,
            "dram": dram * 8 * hw.dram.energy_pj_per_bit,
        }
        return VectorCost(record, cycles, energy)

    def run(self, trace: Trace, steps: int | None = None) -> PintaReport:
        """Cost one step of ``trace``; ``steps`` (default: the trace's meta "steps", else 1)
        scales the per-run totals."""
        tiles = self.tiles(trace)
        gemms = [self.gemm_cost(g, tiles) for g in trace.gemms]
        vector = [self.vector_cost(r) for r in trace.elementwise if r.kind != "quantize"]
        q = self.hw.quantizer
        by_phase = {p: dict.fromkeys(ENERGY_COMPONENTS, 0.0) for p in PHASE_GROUPS}
        cycles_by_phase = dict.fromkeys(PHASE_GROUPS, 0.0)
        quantizer_cycles = 0.0
        for g in gemms:
            group = phase_group(g.gemm.phase)
            for key, pj in g.energy_pj.items():
                by_phase[group][key] += pj
            quantized = (0 if is_float_format(g.gemm.a_format) else g.gemm.m * g.gemm.k) + (
                0 if is_float_format(g.gemm.b_format) else g.gemm.k * g.gemm.n
            )
            by_phase[group]["quantizer"] += quantized * q.energy_pj_per_element * self.scale
            cycles_by_phase[group] += g.cycles + quantized / q.elements_per_cycle
            quantizer_cycles += quantized / q.elements_per_cycle
        for v in vector:
            group = phase_group(v.record.phase)
            for key, pj in v.energy_pj.items():
                by_phase[group][key] += pj
            cycles_by_phase[group] += v.cycles
        for group, cycles in cycles_by_phase.items():
            # W x s = J; x 1e12 for pJ like every other entry.
            by_phase[group]["static"] = self.hw.static_power_w * cycles / self.hw.clock_hz * 1e12
        return PintaReport(
            hardware=self.hw.name,
            clock_hz=self.hw.clock_hz,
            gemms=gemms,
            vector=vector,
            quantizer_cycles=quantizer_cycles,
            steps=steps if steps is not None else int(trace.meta.get("steps", 1)),
            energy_by_phase=by_phase,
        )
