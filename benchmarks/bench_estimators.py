"""Time per training step of the autodiff and Stein estimators; writes JSON.

    python benchmarks/bench_estimators.py [--out benchmarks/results/bench_estimators.json]
        [--threads 1] [--rounds 5] [--pairs 128,512,1024] [--diffquant off,full]

The library call is tqpinn.studies.estimator_bench.bench_estimators (what a step is, and how
the configurations are interleaved, are in its docstring). A second section times the autodiff
Laplacian's ``directions_per_pass`` against a torch.func jvp-of-grad reference.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from common import parser, write_result
from tqpinn.studies.estimator_bench import (
    LAPLACIAN_BASELINE,
    TRAINING_BASELINE,
    bench_estimators,
)


def print_table(title: str, results: dict[str, dict[str, Any]], baseline: str) -> None:
    print(f"\n{title}\n| configuration | median s/step | ratio vs {baseline} |\n|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['median_s']:.4f} | {r[f'ratio_vs_{baseline}']:.2f} |")


def main() -> None:
    p = parser(__doc__, "bench_estimators.json")
    p.add_argument("--rounds", type=int, default=5, help="timed steps per configuration")
    p.add_argument("--pairs", default="128,512,1024", help="Stein pair counts K")
    p.add_argument(
        "--diffquant", default="off,full", help="Stein DiffQuant modes (evaluation paths) to time"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    p.add_argument(
        "--skip-autodiff-sweep", action="store_true", help="skip the directions_per_pass sweep"
    )
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")  # IEEE FP32 baselines, no TF32
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = {"command": " ".join(sys.argv)} | bench_estimators(
        pairs=[int(k) for k in args.pairs.split(",")],
        diffquant_modes=args.diffquant.split(","),
        rounds=args.rounds,
        autodiff_sweep=not args.skip_autodiff_sweep,
    )
    for key, section in result["training_step"].items():
        print_table(key, section["results"], TRAINING_BASELINE)
    for key, section in result.get("autodiff_laplacian", {}).items():
        print_table(f"{key} autodiff Laplacian", section["results"], LAPLACIAN_BASELINE)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
