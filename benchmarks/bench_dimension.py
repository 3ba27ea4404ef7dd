"""Step time and peak memory of each estimator on the Heat recipe against the dimension.

    python benchmarks/bench_dimension.py [--out benchmarks/results/bench_dimension.json]
        [--dims 10,100,1000,10000] [--rounds 3] [--memory-cap-gib 10]
        [--plot docs/img/dimension_sweep.png]

The library call is tqpinn.studies.dimension_sweep.dimension_sweep (the recipe, the child
processes and the interleaved timing are in its docstring).
"""

from __future__ import annotations

from pathlib import Path

import torch

from common import parser, write_result
from tqpinn.studies.dimension_sweep import DIMS, dimension_sweep, plot_sweep

PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "dimension_sweep.png"


def print_table(result: dict) -> None:
    names = list(result["estimators"])
    print("\n| d | " + " | ".join(f"{n} s / MiB" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for d, section in result["dims"].items():
        cells = []
        for n in names:
            p = section["points"][n]
            cells.append(
                "does not fit"
                if "error" in p
                else f"{p['step_s']:.3g} / {p['step_bytes'] / 2**20:.0f}"
            )
        print(f"| {d} | " + " | ".join(cells) + " |")


def main() -> None:
    p = parser(__doc__, "bench_dimension.json")
    p.add_argument("--dims", default=",".join(map(str, DIMS)), help="dimensions d")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per d")
    p.add_argument("--memory-cap-gib", type=float, default=10.0, help="address-space cap per child")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the timing")
    p.add_argument("--plot", type=Path, default=PLOT, help="PNG to write")
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")  # IEEE FP32, no TF32
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = dimension_sweep(
        dims=[int(d) for d in args.dims.split(",")],
        rounds=args.rounds,
        memory_cap=int(args.memory_cap_gib * 2**30),
        log=lambda line: print(line, flush=True),
        done_dim=lambda partial: write_result(args.out, partial),
    )
    print_table(result)
    plot_sweep(result, args.plot)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
