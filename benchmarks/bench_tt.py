"""Forward+backward time of each TT contraction plan vs a dense layer; writes JSON.

    python benchmarks/bench_tt.py --out benchmarks/results/bench_tt.json [--rows 4096,100000]
        [--quant fp32,smx_paper] [--repeats 5] [--device cpu]

The same as ``tqpinn bench tt``. Timings are interleaved with the dense FP32 baseline in one loop
and reported as ratios; the JSON records the load average before and after.
"""

import typer

from tqpinn.cli.bench_tt import bench_tt_command
from tqpinn.cli.common import exit_on_user_error

if __name__ == "__main__":
    with exit_on_user_error():
        typer.run(bench_tt_command)
