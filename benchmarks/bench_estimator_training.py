"""Every estimator trained on the three paper recipes, interleaved; writes or updates JSON.

    python benchmarks/bench_estimator_training.py
        [--out benchmarks/results/bench_estimator_training.json]
        [--recipes poisson2d,hjb20d,heat100d] [--only smx_taylor,fp32_autodiff]
        [--steps 60] [--short-steps 4] [--threads 1]

The library call is tqpinn.studies.estimator_training.bench_estimator_training (the recipes,
the rows and the interleaving are in its docstring). With ``--only`` or ``--recipes`` the rows
run are merged into the existing JSON at ``--out``: each replaces its old measurement and
keeps the run's settings and load average beside it (ratios are recomputed over the merged
rows, so a re-run row is compared with a baseline measured in another run: re-run
fp32_autodiff with it for a same-run ratio).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

from common import parser, write_result
from tqpinn.errors import UserError
from tqpinn.studies.estimator_training import (
    BASELINE,
    RECIPES,
    ROW_KEYS,
    bench_estimator_training,
    merge_results,
    select_rows,
)

STEPS = {"poisson2d": 200, "hjb20d": 60, "heat100d": 60}
"""Steps per recipe, cut from the recipes' 1000 / 10,000 / 1000 so that the whole run (eleven
rows a recipe, one thread) takes about 20 minutes on a shared 2-core machine."""


def print_table(recipe: str, rows: dict[str, dict[str, Any]]) -> None:
    print(
        f"\n{recipe}\n| row | rows/point | median s/step | vs {BASELINE} | saved MB | steps | "
        "rel-L2 |\n|---|---|---|---|---|---|---|"
    )
    for key, r in rows.items():
        print(
            f"| {key} | {r['rows_per_point']} | {r['step_median_s']:.4f} | "
            f"{r.get(f'ratio_vs_{BASELINE}', float('nan')):.2f} | {r['saved_bytes'] / 1e6:.2f} | "
            f"{r['steps']} | {r['rel_l2']:.3e} |"
        )


def main() -> None:
    p = parser(__doc__, "bench_estimator_training.json")
    p.add_argument("--recipes", default=",".join(RECIPES), help="recipes to run")
    p.add_argument("--only", default=None, help=f"rows to run (default all): {','.join(ROW_KEYS)}")
    p.add_argument("--steps", type=int, default=None, help="steps of every recipe (default: STEPS)")
    p.add_argument("--short-steps", type=int, default=4, help="steps of Stein at the recipe's K")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")  # IEEE FP32 baselines, no TF32
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    recipes = args.recipes.split(",")
    for recipe in recipes:
        if recipe not in RECIPES:
            sys.exit(f"unknown recipe {recipe!r}; choose from {list(RECIPES)}")
    try:
        rows = select_rows(None if args.only is None else args.only.split(","))
    except UserError as err:
        sys.exit(str(err))
    steps = {r: STEPS[r] if args.steps is None else args.steps for r in recipes}
    result = {"command": " ".join(sys.argv)} | bench_estimator_training(
        steps, args.short_steps, rows, log=print
    )
    partial = args.only is not None or set(recipes) != set(RECIPES)
    if partial and args.out.exists():
        result = merge_results(json.loads(args.out.read_text()), result)
    for recipe, section in result["recipes"].items():
        print_table(recipe, section["rows"])
    write_result(args.out, result)


if __name__ == "__main__":
    main()
