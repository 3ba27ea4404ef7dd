"""Time per training step of the autodiff and Stein estimators.

A training step is: fresh interior points, the interior residual through the estimator, mean
square, backward, Adam step (Heat-100D: 101-256-256-256-1 tanh, 50 points, u_t − Δu;
Poisson-2D: 2-256-256-256-1 tanh, 100 points, Δu + sin(Σx)). The boundary and initial terms
are left out: they need only u, which costs one forward pass for either estimator.

All configurations of a problem run interleaved, one step each per round, so that load from
other processes falls on all of them alike; ratios to the baseline are medians of per-round
ratios. A second section times the autodiff Laplacian's ``directions_per_pass`` against a
torch.func jvp-of-grad reference (which works only while qops.gemm is a plain matmul or a
custom Function with torch.func support).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from tqpinn.derivatives import DT, LAP, Fields, make_estimator
from tqpinn.derivatives.base import Estimator
from tqpinn.machine import load_average
from tqpinn.nn import MLP
from tqpinn.pdes import Problem, get_problem
from tqpinn.timing import interleaved
from tqpinn.train.loss import solution_fields

ProblemSetting = tuple[str, dict[str, Any], int]
"""(problem name, its options, interior points per step)."""

PROBLEMS: dict[str, ProblemSetting] = {
    # prior recipes (PAPER_NOTES.md §7)
    "heat100d": ("heat", {"dim": 100}, 50),
    "poisson2d": ("poisson", {"dim": 2}, 100),
}
WIDTHS = (256, 256, 256)
TRAINING_BASELINE = "autodiff"
LAPLACIAN_BASELINE = "directions_per_pass=1"
FUNC_LABEL = "torch.func jvp-of-grad"


class FuncJvpLaplacian(Estimator):
    """Reference only: Δu and u_t by torch.func (vmap over directions of jvp of grad)."""

    name = "torch.func"

    def estimated_fields(self, net, x, needs, n_space, generator) -> Fields:
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


def make_step(
    problem: Problem, estimator: Estimator, points: int, widths: Sequence[int], seed: int
) -> Callable[[], None]:
    """One training step on the interior condition, with its own network and optimizer."""
    torch.manual_seed(seed)
    net = MLP([problem.input_dim, *widths, 1], activation="tanh")
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


def summarize(times: Mapping[str, list[float]], baseline: str) -> dict[str, dict[str, Any]]:
    """Median and min seconds per step of each configuration, and the median of its per-round
    ratios to ``baseline`` (under the key ``ratio_vs_<baseline>``)."""
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


def training_step_section(
    pairs: Sequence[int],
    diffquant_modes: Sequence[str],
    rounds: int,
    problems: Mapping[str, ProblemSetting] = PROBLEMS,
    widths: Sequence[int] = WIDTHS,
) -> dict[str, Any]:
    """Autodiff against Stein with each DiffQuant mode and pair count K, per problem."""
    section = {}
    for key, (name, options, points) in problems.items():
        problem = get_problem(name, **options)
        estimators = {TRAINING_BASELINE: make_estimator("autodiff")}
        for mode in diffquant_modes:
            for k in pairs:
                estimators[f"stein_diffquant_{mode}_K{k}"] = make_estimator(
                    "stein", pairs=k, diffquant=mode
                )
        steps = {
            label: make_step(problem, est, points, widths, seed=0)
            for label, est in estimators.items()
        }
        times = interleaved(steps, rounds)
        section[key] = {
            "setting": {
                "problem": name,
                "options": options,
                "interior_points": points,
                "widths": list(widths),
                "activation": "tanh",
                "estimators": {label: repr(est) for label, est in estimators.items()},
            },
            "results": summarize(times, TRAINING_BASELINE),
            "loadavg_after": load_average(),
        }
    return section


def autodiff_laplacian_section(
    rounds: int,
    problems: Mapping[str, ProblemSetting] = PROBLEMS,
    widths: Sequence[int] = WIDTHS,
) -> dict[str, Any]:
    """The autodiff Laplacian's ``directions_per_pass`` (1, 4, 10, 25, d where ≤ d) against
    the torch.func reference, per problem; ``torch_func_error`` says why the reference did not
    run (None when it did)."""
    section = {}
    for key, (name, options, points) in problems.items():
        problem = get_problem(name, **options)
        d = problem.dim
        chunks = sorted({c for c in (1, 4, 10, 25, d) if c <= d})
        estimators: dict[str, Estimator] = {
            f"directions_per_pass={c}": make_estimator("autodiff", directions_per_pass=c)
            for c in chunks
        }
        estimators[FUNC_LABEL] = FuncJvpLaplacian()
        steps = {
            label: make_step(problem, est, points, widths, seed=0)
            for label, est in estimators.items()
        }
        try:
            times = interleaved(steps, rounds)
            func_error = None
        except RuntimeError as err:  # qops.gemm is a custom Function without torch.func support
            func_error = str(err).splitlines()[0]
            del steps[FUNC_LABEL]
            times = interleaved(steps, rounds)
        section[key] = {
            "setting": {"problem": name, "options": options, "interior_points": points},
            "results": summarize(times, LAPLACIAN_BASELINE),
            "torch_func_error": func_error,
            "loadavg_after": load_average(),
        }
    return section


def bench_estimators(
    pairs: Sequence[int] = (128, 512, 1024),
    diffquant_modes: Sequence[str] = ("off", "full"),
    rounds: int = 5,
    autodiff_sweep: bool = True,
    problems: Mapping[str, ProblemSetting] = PROBLEMS,
    widths: Sequence[int] = WIDTHS,
) -> dict[str, Any]:
    """Both sections (the second only with ``autodiff_sweep``), with the load average at the
    start and the end; a JSON-ready dict."""
    result: dict[str, Any] = {
        "rounds": rounds,
        "loadavg_start": load_average(),
        "training_step": training_step_section(pairs, diffquant_modes, rounds, problems, widths),
    }
    if autodiff_sweep:
        result["autodiff_laplacian"] = autodiff_laplacian_section(rounds, problems, widths)
    result["loadavg_end"] = load_average()
    return result
