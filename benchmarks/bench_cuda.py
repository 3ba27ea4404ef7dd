"""On a CUDA device: the compiled quantizer against the reference, a smoke run of each
pipeline, CPU/CUDA agreement, step times of the quantization presets, and the Poisson-2D prior
recipes to their targets; writes JSON.

    python benchmarks/bench_cuda.py [--out benchmarks/results/bench_cuda.json] [--recipe-steps 1000]
        [--sections quantizer smoke ...] [--threads N]

(``--device cpu`` runs the same sections on the CPU: a dry run of the script itself; there the
quantizer section compiles with Inductor's C++ backend and times the fused C kernels beside it.)

The library call is tqpinn.studies.cuda_bench.bench_cuda (the sections are described there).
Every section is independent: a failure is recorded (with its traceback) and the next section
runs. The JSON is rewritten after each section, so a run cut short keeps what it finished.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from common import parser
from tqpinn.studies.cuda_bench import SECTIONS, bench_cuda

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def main() -> None:
    p = parser(__doc__, "bench_cuda.json")
    p.add_argument("--smoke-steps", type=int, default=20)
    p.add_argument("--agreement-steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--recipe-steps", type=int, default=1000)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = p.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            p.error(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_cuda.py: no CUDA device is available")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(name: str, result: dict[str, Any]) -> None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: {result[name + '_seconds']:.1f} s", flush=True)

    bench_cuda(
        CONFIGS,
        args.device,
        smoke_steps=args.smoke_steps,
        agreement_steps=args.agreement_steps,
        rounds=args.rounds,
        recipe_steps=args.recipe_steps,
        on_section=save,
        only=args.sections,
    )


if __name__ == "__main__":
    main()
