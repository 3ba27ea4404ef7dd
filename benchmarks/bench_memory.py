"""Peak memory of one training process against dimension, width, batch and Stein pairs K.

    python benchmarks/bench_memory.py --out benchmarks/results/bench_memory.json

The library call is tqpinn.studies.memory_bench.bench_memory: each point runs in a fresh
process (one thread, glibc mapping every allocation above 128 KiB), two training steps after the
run is built; per point the peak memory the steps add, the bytes one step saves for backward and
the preflight bound; each sweep is fitted with bytes = a + b · knob, and the knob value that
fills the machine's RAM is reported as what fits per process.
"""

from __future__ import annotations

from common import parser, write_result
from tqpinn.studies.memory_bench import bench_memory


def main() -> None:
    p = parser(__doc__, "bench_memory.json")
    args = p.parse_args()
    result = {"command": "python benchmarks/bench_memory.py"} | bench_memory(
        log=lambda line: print(line, flush=True)
    )
    write_result(args.out, result)


if __name__ == "__main__":
    main()
