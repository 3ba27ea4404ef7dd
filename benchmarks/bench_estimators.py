"""Time per training step of the autodiff and Stein estimators; writes JSON.

    python benchmarks/bench_estimators.py [--out benchmarks/results/bench_estimators.json]

A training step is: fresh interior points, the interior residual through the estimator, mean
square, backward, Adam step (Heat-100D: 101-256-256-256-1 tanh, 50 points, u_t − Δu;
Poisson-2D: 2-256-256-256-1 tanh, 100 points, Δu + sin(Σx)). The boundary and initial terms
are left out: they need only u, which costs one forward pass for either estimator.

All configurations of a problem run interleaved, one step each per round, so that load from
other processes falls on all of them alike; ratios to autodiff are medians of per-round ratios.
A second section times the autodiff Laplacian's ``directions_per_pass`` against a torch.func
jvp-of-grad reference (which works only while qops.gemm is a plain matmul or a custom Function
with torch.func support).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable

import torch

from common import parser, write_result
from tqpinn.derivatives import DT, LAP, Fields, make_estimator
from tqpinn.derivatives.base import Estimator
from tqpinn.machine import load_average
from tqpinn.nn import MLP
from tqpinn.pdes import Problem, get_problem
from tqpinn.timing import interleaved
from tqpinn.train.loss import solution_fields

PROBLEMS = {
    # name: (problem, options, interior points per step), prior recipes (PAPER_NOTES.md §7)
    "heat100d": ("heat", {"dim": 100}, 50),
    "poisson2d": ("poisson", {"dim": 2}, 100),
}
WIDTHS = [256, 256, 256]


class FuncJvpLaplacian(Estimator):
    """Reference only: Δu and u_t by torch.func (vmap over directions of jvp of grad)."""

    name = "torch.func"

    def fields(self, net, x, needs, n_space, generator=None) -> Fields:
        from torch.func import grad, jvp, vmap

        def u_one(xi: torch.Tensor) -> torch.Tensor:
            return net(xi[None])[0, 0]

        du = grad(u_one)
        eye = torch.eye(n_space, x.shape[1], dtype=x.dtype)

        def lap_one(xi: torch.Tensor) -> torch.Tensor:
            hess_rows = vmap(lambda v: jvp(du, (xi,), (v,))[1])(eye)  # (d, D)
            return hess_rows[:, :n_space].diagonal().sum()

        return Fields(
            lap=vmap(lap_one)(x) if LAP in needs else None,
            dt=vmap(du)(x)[:, n_space] if DT in needs else None,
        )


def make_step(problem: Problem, estimator: Estimator, points: int, seed: int) -> Callable[[], None]:
    """One training step on the interior condition, with its own network and optimizer."""
    torch.manual_seed(seed)
    net = MLP([problem.input_dim, *WIDTHS, 1], activation="tanh")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    interior = problem.conditions()[0]
    generator = torch.Generator().manual_seed(seed)

    def step() -> None:
        x = interior.sample(points, generator)
        f = solution_fields(problem, net, estimator, x, interior.needs, generator)
        loss = interior.residual(x, f).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run_interleaved(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds per step of each configuration; one warm-up step each, then ``rounds`` rounds."""
    return interleaved(steps, rounds)


def summarize(times: dict[str, list[float]], baseline: str) -> dict[str, dict]:
    out = {}
    for name, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times[baseline], strict=True)]
        out[name] = {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "times_s": ts,
            f"ratio_vs_{baseline}": statistics.median(ratios),
        }
    return out


def training_step_section(pairs: list[int], diffquant_modes: list[str], rounds: int) -> dict:
    section = {}
    for key, (name, options, points) in PROBLEMS.items():
        problem = get_problem(name, **options)
        estimators = {"autodiff": make_estimator("autodiff")}
        for mode in diffquant_modes:
            for k in pairs:
                estimators[f"stein_diffquant_{mode}_K{k}"] = make_estimator(
                    "stein", pairs=k, diffquant=mode
                )
        steps = {
            label: make_step(problem, est, points, seed=0) for label, est in estimators.items()
        }
        times = run_interleaved(steps, rounds)
        section[key] = {
            "setting": {
                "problem": name,
                "options": options,
                "interior_points": points,
                "widths": WIDTHS,
                "activation": "tanh",
                "estimators": {label: repr(est) for label, est in estimators.items()},
            },
            "results": summarize(times, "autodiff"),
            "loadavg_after": load_average(),
        }
        print_table(key, section[key]["results"], "autodiff")
    return section


def autodiff_laplacian_section(rounds: int) -> dict:
    section = {}
    for key, (name, options, points) in PROBLEMS.items():
        problem = get_problem(name, **options)
        d = problem.dim
        chunks = sorted({c for c in (1, 4, 10, 25, d) if c <= d})
        estimators: dict[str, Estimator] = {
            f"directions_per_pass={c}": make_estimator("autodiff", directions_per_pass=c)
            for c in chunks
        }
        estimators["torch.func jvp-of-grad"] = FuncJvpLaplacian()
        steps = {
            label: make_step(problem, est, points, seed=0) for label, est in estimators.items()
        }
        try:
            times = run_interleaved(steps, rounds)
            func_error = None
        except RuntimeError as err:  # qops.gemm is a custom Function without torch.func support
            func_error = str(err).splitlines()[0]
            del steps["torch.func jvp-of-grad"]
            times = run_interleaved(steps, rounds)
        baseline = "directions_per_pass=1"
        section[key] = {
            "setting": {"problem": name, "options": options, "interior_points": points},
            "results": summarize(times, baseline),
            "torch_func_error": func_error,
            "loadavg_after": load_average(),
        }
        print_table(f"{key} autodiff Laplacian", section[key]["results"], baseline)
    return section


def print_table(title: str, results: dict[str, dict], baseline: str) -> None:
    print(f"\n{title}\n| configuration | median s/step | ratio vs {baseline} |\n|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['median_s']:.4f} | {r[f'ratio_vs_{baseline}']:.2f} |")
    sys.stdout.flush()


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
    result = {
        "command": " ".join(sys.argv),
        "rounds": args.rounds,
        "loadavg_start": load_average(),
        "training_step": training_step_section(
            [int(k) for k in args.pairs.split(",")], args.diffquant.split(","), args.rounds
        ),
    }
    if not args.skip_autodiff_sweep:
        result["autodiff_laplacian"] = autodiff_laplacian_section(args.rounds)
    result["loadavg_end"] = load_average()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
