"""TT rank and placement study on one problem: FP32-SE TT, the Stein and the taylor full pipelines.

    python benchmarks/bench_tt_rank.py
        [--out benchmarks/results/tt_rank_poisson2d.json] [--plot docs/img/tt_rank_poisson2d.png]
        [--problem poisson2d] [--budget paper] [--pairs 64] [--steps N]
        [--ranks 2,4,8,16] [--placements both,first] [--inits xavier]
        [--series fp32_se_tt,full_pipeline_taylor] (or add full_pipeline) [--max-rank fp32_se_tt=8]
        [--runs runs/tt_rank] [--threads 1]

The library call is tqpinn.studies.tt_rank.tt_rank_study (grid, series, selection rule in its
docstring). Runs live under ``--runs`` and are reused or resumed on a rerun, so the study can be
stopped and started again, or extended by a wider grid. ``--max-rank SERIES=R`` leaves the
points of rank above R out of that series (a budget limit, recorded in the JSON).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import parser, write_result
from tqpinn.errors import UserError
from tqpinn.studies.reproduce import BudgetCap
from tqpinn.studies.tt_rank import (
    DEFAULT_SERIES,
    PLACEMENTS,
    RANKS,
    grid,
    plot_tt_rank,
    tt_rank_study,
)

ROOT = Path(__file__).resolve().parents[1]


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def max_ranks(text: str) -> dict[str, int]:
    """ "fp32_se_tt=8,..." as {"fp32_se_tt": 8, ...}; "" as {}."""
    try:
        return {name: int(rank) for name, rank in (i.split("=") for i in text.split(",") if i)}
    except ValueError:
        sys.exit(f"error: --max-rank takes SERIES=R,..., got {text!r}")


def main() -> None:
    p = parser(__doc__, "tt_rank_poisson2d.json")
    p.add_argument("--plot", type=Path, default=ROOT / "docs/img/tt_rank_poisson2d.png")
    p.add_argument("--problem", default="poisson2d")
    p.add_argument("--budget", default="paper")
    p.add_argument("--pairs", type=int, default=64, help="Stein pairs cap (FP32 series)")
    p.add_argument("--steps", type=int, default=None, help="steps cap (default: the recipe's)")
    p.add_argument("--ranks", default=",".join(map(str, RANKS)))
    p.add_argument("--placements", default=",".join(PLACEMENTS))
    p.add_argument("--inits", default="xavier")
    p.add_argument("--series", default=",".join(DEFAULT_SERIES))
    p.add_argument("--max-rank", default="", help="SERIES=R,...: highest rank a series trains")
    p.add_argument("--runs", type=Path, default=ROOT / "runs/tt_rank")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")  # IEEE FP32 baselines, no TF32
    torch.set_num_threads(args.threads)
    try:
        points = grid(ints(args.ranks), args.placements.split(","), args.inits.split(","))
        result = tt_rank_study(
            args.runs,
            points,
            args.budget,
            args.problem,
            BudgetCap(steps=args.steps, pairs=args.pairs),
            args.series.split(","),
            max_rank=max_ranks(args.max_rank),
        )
    except UserError as err:
        sys.exit(f"error: {err}")
    result = {"command": " ".join(sys.argv), **result}
    ref = result["reference"]
    print(f"reference {ref['variant']}: {ref['n_params']} params, rel-L2 {ref['rel_l2']:.3e}")
    for name, rows in result["series"].items():
        for key, row in rows.items():
            print(
                f"{name:22s} {key:18s} {row['n_params']:7d} params  rel-L2 {row['rel_l2']:.3e}"
                f"  FP32 GEMMs {row['rel_l2_fp32']:.3e}  {row['wall_seconds']:.0f} s"
            )
    print(f"current recipe: {result['current']}; choice: {result['choice']}")
    write_result(args.out, result)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot_tt_rank(result, args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
