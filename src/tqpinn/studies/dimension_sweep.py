"""Cost of each estimator against the dimension: the Heat recipe in d = 10 ... 10,000.

The recipe is ``configs/heat100d_fp32_ad.yaml`` (3 x 256 tanh, dense, FP32; 50 interior,
50 initial and 50 boundary points a step) with ``problem.options.dim = d`` and the estimator of
the row; the test set is cut to a few points (it is allocated, never evaluated here).

Memory: each (d, estimator) point runs in a fresh process (peak RSS cannot be reset within
one), as :mod:`tqpinn.studies.memory_bench` does: one thread, glibc mapping every large
allocation so freed tensors leave the RSS, and here an address-space cap (``memory_cap``) so
that a point too large for the machine fails alone (a failed allocation, or the run's own
memory pre-flight) instead of pushing the machine into swap or the OOM killer. The child builds
the run and takes ``child_steps`` training steps; recorded: the peak RSS the steps add over the
built run (``step_bytes``), the whole process's peak (``peak_rss_bytes``) and each step's
seconds.

Time: the points of one d that fitted are then timed in this process, interleaved (one step of
each per round, :func:`tqpinn.timing.interleaved`), with torch's threads; a point whose child
step took longer than ``interleave_max_s`` keeps the child's (single-thread) second step time
alone, marked ``timed_in_child``. An estimator slower than ``skip_above_s`` a step is not run
at the larger d (marked ``skipped``), so that the sweep ends in minutes.

Run as a module (``python -m tqpinn.studies.dimension_sweep CONFIG_JSON STEPS``), it measures
one point and prints its JSON: that is the child process.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tqpinn.machine import load_average
from tqpinn.report.pyplot import pyplot
from tqpinn.studies.memory_bench import MALLOC_MMAP_THRESHOLD, THREADS_PER_PROCESS, rss_bytes
from tqpinn.studies.reproduce.recipes import CONFIGS_DIR
from tqpinn.timing import interleaved
from tqpinn.train.config import config_from_dict, load_config
from tqpinn.train.run import build_run
from tqpinn.train.trainer import train_step

DIMS = (10, 100, 1000, 10000)
ESTIMATORS: dict[str, dict[str, Any]] = {
    "autodiff": {"name": "autodiff"},
    "stein_K64": {"name": "stein", "sigma": 0.01, "pairs": 64, "value": "center"},
    "stencil": {"name": "stencil", "h": 0.01},
    "taylor": {"name": "taylor"},
}
RECIPE = "heat100d_fp32_ad.yaml"
TEST_POINTS = 16
MEMORY_CAP = 10 * 2**30
"""Address-space cap of a child (bytes): under half the 23 GiB of the shared development
machine, so that a point that does not fit fails alone."""
CHILD_STEPS = 2
INTERLEAVE_MAX_S = 30.0
SKIP_ABOVE_S = 20.0
ROUNDS = 3

Log = Callable[[str], None]


def sweep_config(dim: int, estimator: str, widths: Sequence[int] | None = None) -> dict[str, Any]:
    """The Heat recipe in ``dim`` dimensions with ``estimator`` (a key of ESTIMATORS), FP32,
    as a plain dict; ``widths`` replace the recipe's (tests use tiny ones)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {list(ESTIMATORS)}")
    data = load_config(CONFIGS_DIR / RECIPE).to_dict()
    data["problem"]["options"]["dim"] = dim
    data["estimator"] = dict(ESTIMATORS[estimator])
    data["train"]["eval_points"] = TEST_POINTS
    if widths is not None:
        data["model"]["widths"] = list(widths)
    return data


def measure(cfg: Mapping[str, Any], steps: int) -> dict[str, Any]:
    """In the child process: build the run, take ``steps`` steps; peak memory and seconds."""
    torch.set_float32_matmul_precision("highest")
    run = build_run(config_from_dict(dict(cfg)))
    before = rss_bytes()
    counter = itertools.count()
    seconds = interleaved({"step": lambda: train_step(run, next(counter))}, steps, warmup=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "step_bytes": max(peak - before, 0),
        "peak_rss_bytes": peak,
        "rss_before_steps": before,
        "child_seconds": seconds["step"],
        "n_params": run.n_params,
    }


def run_child(
    cfg: Mapping[str, Any], steps: int = CHILD_STEPS, memory_cap: int = MEMORY_CAP
) -> dict[str, Any]:
    """``measure(cfg, steps)`` in a fresh single-threaded process under an address-space cap of
    ``memory_cap`` bytes; ``{"error": last line}`` if it failed."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(THREADS_PER_PROCESS),
        "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
    }

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    result = subprocess.run(
        [sys.executable, "-m", __name__, json.dumps(cfg), str(steps)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=cap,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_interleaved(
    configs: Mapping[str, Mapping[str, Any]], rounds: int
) -> dict[str, list[float]]:
    """Seconds of each step of each config, built in this process and interleaved (one warm-up
    round)."""
    steppers = {}
    for key, cfg in configs.items():
        run = build_run(config_from_dict(dict(cfg)))
        counter = itertools.count()
        steppers[key] = lambda run=run, counter=counter: train_step(run, next(counter))
    return interleaved(steppers, rounds, warmup=1)


def cheapest(points: Mapping[str, Mapping[str, Any]], metric: str) -> str | None:
    """The estimator with the smallest ``metric`` among the points that have it."""
    have = {k: p[metric] for k, p in points.items() if metric in p}
    return min(have, key=have.__getitem__) if have else None


def dimension_sweep(
    dims: Sequence[int] = DIMS,
    estimators: Sequence[str] = tuple(ESTIMATORS),
    rounds: int = ROUNDS,
    memory_cap: int = MEMORY_CAP,
    interleave_max_s: float = INTERLEAVE_MAX_S,
    widths: Sequence[int] | None = None,
    skip_above_s: float = SKIP_ABOVE_S,
    log: Log = lambda line: None,
    done_dim: Callable[[dict[str, Any]], None] = lambda partial: None,
) -> dict[str, Any]:
    """Every (d, estimator) point, d ascending: memory in a child, time interleaved here; per d
    the cheapest estimator in step time and in step memory. An estimator whose step took longer
    than ``skip_above_s`` is skipped at every larger d (its cost only grows with d).
    ``done_dim`` gets the result so far after each d (a long sweep saves as it goes). A
    JSON-ready dict."""
    result: dict[str, Any] = {
        "recipe": RECIPE,
        "estimators": {k: ESTIMATORS[k] for k in estimators},
        "memory_cap_bytes": memory_cap,
        "threads_per_child": THREADS_PER_PROCESS,
        "threads_interleaved": torch.get_num_threads(),
        "rounds": rounds,
        "skip_above_s": skip_above_s,
        "loadavg_start": load_average(),
        "dims": {},
    }
    too_slow: dict[str, str] = {}
    for dim in sorted(dims):
        configs = {e: sweep_config(dim, e, widths) for e in estimators}
        points = {
            e: {"skipped": too_slow[e]} if e in too_slow else run_child(cfg, memory_cap=memory_cap)
            for e, cfg in configs.items()
        }
        quick = {
            e: configs[e]
            for e, p in points.items()
            if "step_bytes" in p and p["child_seconds"][-1] <= interleave_max_s
        }
        times = time_interleaved(quick, rounds) if quick else {}
        for e, p in points.items():
            if e in times:
                p["step_s"] = statistics.median(times[e])
                p["times_s"] = times[e]
            elif "step_bytes" in p:
                p["step_s"] = p["child_seconds"][-1]
                p["timed_in_child"] = True
            if p.get("step_s", 0.0) > skip_above_s:
                too_slow[e] = f"its step took {p['step_s']:.0f} s at d = {dim}"
            log(f"d={dim} {e}: {p.get('step_s', p.get('error'))} s, {p.get('step_bytes')} B")
        result["dims"][str(dim)] = {
            "points": points,
            "cheapest_time": cheapest(points, "step_s"),
            "cheapest_memory": cheapest(points, "step_bytes"),
            "loadavg_after": load_average(),
        }
        done_dim(result)
    result["loadavg_end"] = load_average()
    return result


def plot_sweep(result: Mapping[str, Any], path: Path) -> None:
    """Step time and step memory against d, log-log, one line per estimator (points that did
    not fit left out), into a PNG at ``path``."""
    plt = pyplot()
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for name in result["estimators"]:
        ok = [
            (int(d), s["points"][name])
            for d, s in result["dims"].items()
            if "step_s" in s["points"].get(name, {})
        ]
        dims = [d for d, _ in ok]
        ax_time.plot(dims, [p["step_s"] for _, p in ok], "o-", label=name)
        ax_mem.plot(dims, [p["step_bytes"] / 2**20 for _, p in ok], "o-", label=name)
    for ax, label in ((ax_time, "seconds a training step"), (ax_mem, "MiB a step adds (peak RSS)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dimension d (Heat, 3 x 256 tanh, 50 interior points)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]), int(sys.argv[2]))))
