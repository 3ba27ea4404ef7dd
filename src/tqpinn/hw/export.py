"""Export a trace's GEMMs to SCALE-Sim (``pip install scalesim``) and read its cycle report back.

SCALE-Sim's GEMM mode reads a topology CSV of ``name, M, N, K`` rows for the product
(M x K) @ (K x N), the convention of :class:`~tqpinn.hw.trace.GemmRecord`, and an architecture
config (array size, dataflow, buffer sizes). A precision mode that does p MACs per PE per cycle
is exported with K reduced to ceil(K / p), the array-level effect of packing p products along
the reduction axis (SCALE-Sim has no precision modes). No SCALE-Sim import is needed here.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from tqpinn.hw.hardware import Hardware
from tqpinn.hw.pinta import select_mode
from tqpinn.hw.systolic import reduced_k
from tqpinn.hw.trace import GemmRecord

LAYOUT_HEADER = "Layer name, IFMAP Height Intraline Factor,\n"
"""SCALE-Sim 3 opens a layout file even when custom layouts are off; a header-only one will do."""


def exported_shape(gemm: GemmRecord, hw: Hardware) -> tuple[int, int, int]:
    """(M, N, K) as SCALE-Sim should see ``gemm`` on ``hw``: K shortened by the mode's packing."""
    mode = hw.modes[select_mode(hw, gemm)]
    return gemm.m, gemm.n, reduced_k(gemm.k, mode.macs_per_pe_cycle)


def topology_csv(shapes: Sequence[tuple[int, int, int]]) -> str:
    """SCALE-Sim GEMM topology: a header and one ``gemm_i, M, N, K,`` row per product."""
    rows = ["Layer, M, N, K,"]
    rows += [f"gemm_{i}, {m}, {n}, {k}," for i, (m, n, k) in enumerate(shapes)]
    return "\n".join(rows) + "\n"


def config_text(hw: Hardware, dataflow: str, run_name: str = "tqpinn") -> str:
    """A SCALE-Sim architecture config with PINTA's array size and buffer split.

    The global buffer is split in three equal parts (ifmap, filter, ofmap), as PINTA's spill
    rule assumes; bandwidth is left to SCALE-Sim's CALC mode (enough to never stall), so that
    its cycle count is the compute cycles that :mod:`tqpinn.hw.systolic` models.
    """
    if dataflow not in ("ws", "os", "is"):
        raise ValueError(f"SCALE-Sim dataflow must be 'ws', 'os' or 'is', got {dataflow!r}")
    third_kb = max(1, hw.sram.buffer_bytes // 3 // 1024)
    return f"""[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight = {hw.array.rows}
ArrayWidth = {hw.array.cols}
ifmapsramszkB = {third_kb}
filtersramszkB = {third_kb}
ofmapsramszkB = {third_kb}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {dataflow}
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


def write_scalesim_inputs(
    out_dir: Path,
    shapes: Sequence[tuple[int, int, int]],
    hw: Hardware,
    dataflow: str,
    run_name: str = "tqpinn",
) -> dict[str, Path]:
    """Write topology, config and layout files into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "topology": out_dir / "topology.csv",
        "config": out_dir / f"{run_name}.cfg",
        "layout": out_dir / "layout.csv",
    }
    paths["topology"].write_text(topology_csv(shapes))
    paths["config"].write_text(config_text(hw, dataflow, run_name))
    paths["layout"].write_text(LAYOUT_HEADER)
    return paths


def read_compute_cycles(report: Path) -> list[int]:
    """Compute cycles per layer from SCALE-Sim's COMPUTE_REPORT.csv (total minus stalls)."""
    with report.open(newline="") as f:
        rows = list(csv.reader(f, skipinitialspace=True))
    header = [h.strip() for h in rows[0]]
    total, stalls = header.index("Total Cycles"), header.index("Stall Cycles")
    return [int(float(r[total])) - int(float(r[stalls])) for r in rows[1:] if r and r[0].strip()]
