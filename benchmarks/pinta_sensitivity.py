"""Which assumptions drive PINTA's speedup and energy saving: re-cost saved traces; writes JSON.

    tqpinn hw --compare --out benchmarks/results/hw_compare      # traces + compare.json
    python benchmarks/pinta_sensitivity.py --traces benchmarks/results/hw_compare \\
        [--out benchmarks/results/pinta_sensitivity.json]

The library call is tqpinn.studies.pinta_sensitivity.sensitivity: each variant changes one group
of parameters of the default PINTA description (or of the baseline platforms) and costs the same
traced steps again (model outputs, deterministic). Speedup and energy saving are against the
FP32-autodiff step on each datasheet platform.
"""

from __future__ import annotations

from pathlib import Path

from common import parser, write_result
from tqpinn.studies.pinta_sensitivity import sensitivity


def main() -> None:
    p = parser(__doc__, "pinta_sensitivity.json")
    p.add_argument("--traces", type=Path, default=Path("benchmarks/results/hw_compare"))
    args = p.parse_args()
    results = sensitivity(args.traces)
    write_result(args.out, results)
    for problem, rows in results["problems"].items():
        print(problem)
        for name, r in rows.items():
            print(f"  {name:<58} speedup {r['speedup']:8.3g}x  saving {r['energy_saving']:8.3g}x")


if __name__ == "__main__":
    main()
