"""Bytes one training step saves for backward, per module, for the ablation variants of every
problem at the paper recipe.

    python benchmarks/bench_saved_bytes.py --out benchmarks/results/saved_bytes.json

The library call is tqpinn.studies.saved_bytes.saved_bytes_study: for FP32-SE dense, SMX-SE
DiffQuant dense, the full pipeline (Stein, PRS) and its Taylor variant, one training step under
tqpinn.quant.memory.saved_bytes (formats' real widths, attributed to the module that saved each
tensor), and each total over FP32-SE dense's. Needs a few GB of memory (HJB-20D).
"""

from __future__ import annotations

from common import parser, write_result
from tqpinn.machine import load_average
from tqpinn.studies.saved_bytes import saved_bytes_study


def main() -> None:
    p = parser(__doc__, "saved_bytes.json")
    args = p.parse_args()
    result = {"command": "python benchmarks/bench_saved_bytes.py"}
    result |= saved_bytes_study(log=lambda line: print(line, flush=True))
    result["loadavg_end"] = load_average()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
