"""Cross-check PINTA's systolic cycle model against SCALE-Sim on the GEMMs of a real step; JSON.

    pip install 'tqpinn[hw]'   # scalesim; its 3.0.0 memory model needs numpy < 2.4
    python benchmarks/scalesim_crosscheck.py [--out benchmarks/results/scalesim_crosscheck.json]

The library call is tqpinn.studies.scalesim_crosscheck.crosscheck: one training step of the
Poisson-2D full pipeline traced at a reduced batch (``--pairs``, ``--points``: SCALE-Sim
simulates every cycle, so large row counts take minutes), its distinct GEMM shapes simulated in
the ws, os and is dataflows, SCALE-Sim's compute cycles beside ours (without and with stationary
double buffering) and PINTA's default. docs/pinta.md ("Cross-check with SCALE-Sim") explains
every difference above 25%.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from common import parser, write_result
from tqpinn.studies.scalesim_crosscheck import crosscheck


def main() -> None:
    p = parser(__doc__, "scalesim_crosscheck.json")
    p.add_argument("--configs", type=Path, default=Path("configs"))
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--points", type=int, default=16)
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")
    result = crosscheck(args.configs, args.pairs, args.points)
    write_result(args.out, result)
    summary = {
        "totals": result["totals_weighted_by_count"],
        "max_abs_rel_diff": result["max_abs_rel_diff"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
