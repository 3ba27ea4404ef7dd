"""The PRS experiment: what each TT contraction plan costs in accuracy under smx_paper.

Part 1 (layer level): for TT layers of the paper's problems, the relative error vs FP32 of the
output, the input gradient and the core gradients, for every plan and grouping, with merges in
FP32 (each merged core quantized once) and quantized. Part 2 (training): Poisson-2D and HJB-20D
trained with each plan under smx_paper (reduced budget, stated in the JSON). Writes JSON and a
plot:

    python benchmarks/prs_experiment.py [--out benchmarks/results/prs.json] \\
        --plot docs/tt_prs.png [--seeds 3] [--rows 4096] [--steps 200] [--pairs 32] [--no-train]

The library call is tqpinn.studies.prs_experiment.prs_experiment (layer part in
tqpinn.studies.prs, training part in tqpinn.studies.prs_training).
"""

from __future__ import annotations

from pathlib import Path

import torch

from common import parser, write_result
from tqpinn.studies.prs_experiment import plot_prs, prs_experiment

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = parser(__doc__, "prs.json")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "prs")
    p.add_argument("--no-train", action="store_true")
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")
    result = prs_experiment(
        ROOT / "configs",
        args.runs,
        seeds=args.seeds,
        rows=args.rows,
        steps=args.steps,
        pairs=args.pairs,
        with_training=not args.no_train,
        settings=vars(args) | {"out": str(args.out), "plot": str(args.plot), "runs": None},
        log=lambda line: print(line, flush=True),
    )
    write_result(args.out, result)
    summary, training = result["layer_summary"], result["training"]
    print(f"{len(summary)} layer cases x plans, {len(training)} training runs")
    if args.plot is not None:
        plot_prs(summary, training, args.plot)


if __name__ == "__main__":
    main()
