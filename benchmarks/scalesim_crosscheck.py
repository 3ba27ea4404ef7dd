"""Cross-check PINTA's systolic cycle model against SCALE-Sim on the GEMMs of a real step; JSON.

    pip install 'tqpinn[hw]'   # scalesim; its 3.0.0 memory model needs numpy < 2.4
    python benchmarks/scalesim_crosscheck.py [--out benchmarks/results/scalesim_crosscheck.json]

Traces one training step of the Poisson-2D full pipeline (Stein with DiffQuant streams, TT
hidden layers with PRS, smx_paper) at a reduced batch (``--pairs``, ``--points``: SCALE-Sim simulates every cycle,
so large row counts take minutes), takes its distinct GEMM shapes in their multiplier modes,
exports each (K shortened by the mode's packing) with PINTA's array size, runs SCALE-Sim for the
ws, os and is dataflows, and puts its compute cycles beside three of ours per shape:

- ``ours_no_overlap``: the same dataflow without stationary double buffering (SCALE-Sim's
  assumption), 2R + C + T − 2 per fold;
- ``ours_overlap``: the same dataflow with PINTA's default double buffering;
- ``pinta_default``: PINTA's default (overlap, fastest dataflow per GEMM).

docs/pinta.md ("Cross-check with SCALE-Sim") explains every difference above 25%.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from common import parser, write_result
from tqpinn.hw.export import exported_shape, read_compute_cycles, write_scalesim_inputs
from tqpinn.hw.hardware import load_hardware
from tqpinn.hw.pinta import select_mode
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.systolic import DATAFLOWS, best_mapping, compute_cycles, map_gemm
from tqpinn.machine import load_average
from tqpinn.studies.hw_compare import CASES
from tqpinn.train.config import load_config


def run_scalesim(shapes: list[tuple[int, int, int]], dataflow: str, work: Path) -> list[int]:
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


def main() -> None:
    p = parser(__doc__, "scalesim_crosscheck.json")
    p.add_argument("--configs", type=Path, default=Path("configs"))
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--points", type=int, default=16)
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")
    hw = load_hardware()
    rows_, cols_ = hw.array.rows, hw.array.cols
    load_before = load_average()

    small = [
        f"estimator.pairs={args.pairs}",
        f"train.points={{interior: {args.points}, boundary: {args.points}}}",
    ]
    cfg = load_config(args.configs / CASES[0].pipeline, small)
    trace = StepRunner.build(cfg).trace()

    distinct: dict[tuple[int, int, int, str], int] = {}
    for g in trace.gemms:
        key = (*exported_shape(g, hw), select_mode(hw, g))
        distinct[key] = distinct.get(key, 0) + 1
    keys = sorted(distinct)
    shapes = [k[:3] for k in keys]

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scalesim = {d: run_scalesim(shapes, d, Path(tmp)) for d in DATAFLOWS}
    scalesim_s = time.perf_counter() - t0

    rows = []
    for i, (m, n, k, mode) in enumerate(keys):
        best, best_cycles = best_mapping(m, n, k, rows_, cols_, True, "auto")
        row = {
            "m": m,
            "n": n,
            "k_exported": k,
            "mode": mode,
            "count_in_step": distinct[keys[i]],
            "pinta_default": {"dataflow": best.dataflow, "cycles": best_cycles},
        }
        for d in DATAFLOWS:
            mapping = map_gemm(d, m, n, k)
            ours_plain = compute_cycles(mapping, rows_, cols_, overlap=False)
            ours_overlap = compute_cycles(mapping, rows_, cols_, overlap=True)
            ss = scalesim[d][i]
            row[d] = {
                "scalesim": ss,
                "ours_no_overlap": ours_plain,
                "ours_overlap": ours_overlap,
                "no_overlap_rel_diff": (ours_plain - ss) / ss,
                "overlap_rel_diff": (ours_overlap - ss) / ss,
            }
        rows.append(row)

    def weighted_total(d: str, key: str) -> int:
        return sum(r[d][key] * r["count_in_step"] for r in rows)

    totals = {
        d: {key: weighted_total(d, key) for key in ("scalesim", "ours_no_overlap", "ours_overlap")}
        for d in DATAFLOWS
    }
    totals["pinta_default"] = sum(r["pinta_default"]["cycles"] * r["count_in_step"] for r in rows)
    result = {
        "array": [rows_, cols_],
        "trace": {
            "config": CASES[0].pipeline,
            "overrides": small,
            "gemms": len(trace.gemms),
            "distinct_shapes": len(rows),
        },
        "rows": rows,
        "totals_weighted_by_count": totals,
        "max_abs_rel_diff": {
            d: {
                "no_overlap": max(abs(r[d]["no_overlap_rel_diff"]) for r in rows),
                "overlap": max(abs(r[d]["overlap_rel_diff"]) for r in rows),
            }
            for d in DATAFLOWS
        },
        "scalesim_seconds": scalesim_s,
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
    }
    write_result(args.out, result)
    print(json.dumps({"totals": totals, "max_abs_rel_diff": result["max_abs_rel_diff"]}, indent=2))


if __name__ == "__main__":
    main()
