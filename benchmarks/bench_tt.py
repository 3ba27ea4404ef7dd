"""Forward+backward time of each TT contraction plan vs a dense layer; writes JSON.

    python benchmarks/bench_tt.py [--out benchmarks/results/bench_tt.json] [--rows 4096,100000]
        [--quant fp32,smx_paper] [--repeats 5] [--device cpu]

The library call of ``tqpinn bench tt`` (tqpinn.studies.tt_bench). Timings are interleaved with
the dense FP32 baseline in one loop and reported as ratios; the JSON records the machine and
the load average before and after.
"""

from common import parser, write_result
from tqpinn.studies.tt_bench import bench_tt


def main() -> None:
    p = parser(__doc__, "bench_tt.json")
    p.add_argument("--rows", default="4096,100000", help="row counts, comma-separated")
    p.add_argument("--quant", default="fp32,smx_paper", help="presets, comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    result = bench_tt(
        rows=[int(r) for r in args.rows.split(",")],
        quants=args.quant.split(","),
        repeats=args.repeats,
        device=args.device,
    )
    write_result(args.out, result, args.device)
    for r in result["results"]:
        print(f"{r['rows']:>7} {r['quant']:<10} {r['layer']:<22} x{r['ratio_to_dense_fp32']:.2f}")


if __name__ == "__main__":
    main()
