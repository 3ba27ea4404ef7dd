"""Cross-check PINTA's systolic cycle model against SCALE-Sim on the GEMMs of a real step.

Traces one training step of the Poisson-2D full pipeline (Stein with DiffQuant streams, TT
hidden layers with PRS, smx_paper) at a reduced batch (SCALE-Sim simulates every cycle, so large
row counts take minutes), takes its distinct GEMM shapes in their multiplier modes, exports each
(K shortened by the mode's packing) with PINTA's array size, runs SCALE-Sim for the ws, os and
is dataflows, and puts its compute cycles beside three of ours per shape:

- ``ours_no_overlap``: the same dataflow without stationary double buffering (SCALE-Sim's
  assumption), 2R + C + T − 2 per fold;
- ``ours_overlap``: the same dataflow with PINTA's default double buffering;
- ``pinta_default``: PINTA's default (overlap, fastest dataflow per GEMM).

SCALE-Sim is the optional ``scalesim`` package (``pip install 'tqpinn[hw]'``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqpinn.hw.export import exported_shape, read_compute_cycles, write_scalesim_inputs
from tqpinn.hw.hardware import Hardware, load_hardware
from tqpinn.hw.pinta import select_mode
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.systolic import DATAFLOWS, best_mapping, compute_cycles, map_gemm
from tqpinn.hw.trace import Trace
from tqpinn.machine import load_average
from tqpinn.studies.hw_compare import CASES
from tqpinn.train.config import load_config

Shape = tuple[int, int, int]
GemmKey = tuple[int, int, int, str]
"""(M, N, exported K, multiplier mode)."""
Simulate = Callable[[Sequence[Shape], str, Path], list[int]]
"""(shapes, dataflow, work folder) -> compute cycles per shape."""
CYCLE_KEYS = ("scalesim", "ours_no_overlap", "ours_overlap")


def run_scalesim(shapes: Sequence[Shape], dataflow: str, work: Path) -> list[int]:
    """SCALE-Sim's compute cycles of each GEMM shape on PINTA's array in ``dataflow``."""
    from scalesim.scale_sim import scalesim

    hw = load_hardware()
    paths = write_scalesim_inputs(work / dataflow, shapes, hw, dataflow)
    sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=str(paths["config"]),
        topology=str(paths["topology"]),
        layout=str(paths["layout"]),
        input_type_gemm=True,
    )
    sim.run_scale(top_path=str(work / dataflow / "out"))
    return read_compute_cycles(work / dataflow / "out" / "tqpinn" / "COMPUTE_REPORT.csv")


def distinct_gemms(trace: Trace, hw: Hardware) -> dict[GemmKey, int]:
    """How often each distinct exported shape and multiplier mode occurs in ``trace``."""
    counts: dict[GemmKey, int] = {}
    for g in trace.gemms:
        key = (*exported_shape(g, hw), select_mode(hw, g))
        counts[key] = counts.get(key, 0) + 1
    return counts


def compare_cycles(
    counts: Mapping[GemmKey, int], simulated: Mapping[str, Sequence[int]], hw: Hardware
) -> list[dict[str, Any]]:
    """One row per key of ``counts`` (sorted): SCALE-Sim's cycles for each dataflow
    (``simulated[dataflow][i]`` for the i-th sorted key) beside ours, and their relative
    differences (ours − SCALE-Sim) / SCALE-Sim."""
    rows_, cols_ = hw.array.rows, hw.array.cols
    rows = []
    for i, key in enumerate(sorted(counts)):
        m, n, k, mode = key
        best, best_cycles = best_mapping(m, n, k, rows_, cols_, True, "auto")
        row: dict[str, Any] = {
            "m": m,
            "n": n,
            "k_exported": k,
            "mode": mode,
            "count_in_step": counts[key],
            "pinta_default": {"dataflow": best.dataflow, "cycles": best_cycles},
        }
        for d in DATAFLOWS:
            mapping = map_gemm(d, m, n, k)
            ours_plain = compute_cycles(mapping, rows_, cols_, overlap=False)
            ours_overlap = compute_cycles(mapping, rows_, cols_, overlap=True)
            ss = simulated[d][i]
            row[d] = {
                "scalesim": ss,
                "ours_no_overlap": ours_plain,
                "ours_overlap": ours_overlap,
                "no_overlap_rel_diff": (ours_plain - ss) / ss,
                "overlap_rel_diff": (ours_overlap - ss) / ss,
            }
        rows.append(row)
    return rows


def weighted_totals(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Cycles of the whole step (each shape times its count), per dataflow and PINTA's default."""
    totals: dict[str, Any] = {
        d: {key: sum(r[d][key] * r["count_in_step"] for r in rows) for key in CYCLE_KEYS}
        for d in DATAFLOWS
    }
    totals["pinta_default"] = sum(r["pinta_default"]["cycles"] * r["count_in_step"] for r in rows)
    return totals


def crosscheck(
    configs: Path, pairs: int = 16, points: int = 16, simulate: Simulate = run_scalesim
) -> dict[str, Any]:
    """Trace the Poisson-2D pipeline step at ``pairs`` Stein pairs and ``points`` points per
    condition, simulate its distinct GEMMs with ``simulate`` in every dataflow and compare; a
    JSON-ready dict."""
    hw = load_hardware()
    load_before = load_average()
    small = [
        f"estimator.pairs={pairs}",
        f"train.points={{interior: {points}, boundary: {points}}}",
    ]
    cfg = load_config(configs / CASES[0].pipeline, small)
    trace = StepRunner.build(cfg).trace()
    counts = distinct_gemms(trace, hw)
    shapes = [key[:3] for key in sorted(counts)]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        simulated = {d: simulate(shapes, d, Path(tmp)) for d in DATAFLOWS}
    simulate_s = time.perf_counter() - t0

    rows = compare_cycles(counts, simulated, hw)
    return {
        "array": [hw.array.rows, hw.array.cols],
        "trace": {
            "config": CASES[0].pipeline,
            "overrides": small,
            "gemms": len(trace.gemms),
            "distinct_shapes": len(rows),
        },
        "rows": rows,
        "totals_weighted_by_count": weighted_totals(rows),
        "max_abs_rel_diff": {
            d: {
                "no_overlap": max(abs(r[d]["no_overlap_rel_diff"]) for r in rows),
                "overlap": max(abs(r[d]["overlap_rel_diff"]) for r in rows),
            }
            for d in DATAFLOWS
        },
        "scalesim_seconds": simulate_s,
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
    }
