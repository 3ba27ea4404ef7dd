"""Step time and saved-for-backward bytes of fp32, mx_int8 and smx_paper; writes JSON.

    python benchmarks/bench_quant.py [--out benchmarks/results/bench_quant.json] [--repeats 3]
        [--set estimator.pairs=128 ...]

The library call of ``tqpinn bench quant`` (tqpinn.studies.quant_bench). Steps are timed
interleaved with the FP32 baseline in one loop and reported as ratios; the JSON records the
machine and the load average before and after.
"""

from common import parser, write_result
from tqpinn.studies.quant_bench import bench_quant


def main() -> None:
    p = parser(__doc__, "bench_quant.json")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per preset and config")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    args = p.parse_args()
    result = bench_quant(overrides=args.overrides, repeats=args.repeats)
    write_result(args.out, result)
    for name, r in result["configs"].items():
        print(
            f"{name:<14} smx/fp32 step x{r['smx_over_fp32']:.2f}  mx/fp32 x{r['mx_over_fp32']:.2f}"
        )


if __name__ == "__main__":
    main()
