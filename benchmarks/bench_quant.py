"""Step time and saved-for-backward bytes of fp32, mx_int8 and smx_paper; writes JSON.

    python benchmarks/bench_quant.py --out benchmarks/results/bench_quant.json [--repeats 3]
        [--set estimator.pairs=128 ...]

The same as ``tqpinn bench quant``. Steps are timed interleaved with the FP32 baseline in one
loop and reported as ratios; the JSON records the load average before and after.
"""

import typer

from tqpinn.cli.bench_quant import bench_quant_command
from tqpinn.cli.common import exit_on_user_error

if __name__ == "__main__":
    with exit_on_user_error():
        typer.run(bench_quant_command)
