"""Peak memory of one training process against dimension, width, batch and Stein pairs K.

    python benchmarks/bench_memory.py --out benchmarks/results/bench_memory.json

Each point runs in a fresh process (peak RSS cannot be reset within one): the run is built,
then two training steps run. Recorded per point:
  step_bytes   peak RSS during the steps minus the RSS before them: what the steps add;
  saved_bytes  what one step saves for backward (tqpinn.quant.memory.saved_bytes);
  bound_bytes  the preflight lower bound of the run (tqpinn.train.limits), and
  bound_step_bytes its per-step terms (kept activations, Stein perturbations), the part that
               step_bytes measures (parameters and test set exist before the steps).
Sweeps vary one knob around a base (Poisson, 3 x 256 tanh, 50 interior + 50 boundary points,
Stein K = 256 or autodiff); each sweep is fitted with bytes = a + b · knob (least squares
over its points), and the knob value that fills the machine's RAM with that fit is reported
as what fits per process. Memory does not depend on timing, but the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from common import parser, write_result
from tqpinn.machine import load_average

BASE: dict[str, Any] = {
    "seed": 0,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [256, 256, 256]},
    "train": {"steps": 2, "eval_points": 1000, "points": {"interior": 50, "boundary": 50}},
}
ESTIMATORS = {
    "autodiff": {"name": "autodiff"},
    "stein": {"name": "stein", "sigma": 0.01, "pairs": 256},
}
SWEEPS: dict[str, tuple[list[int], list[str]]] = {
    # knob: (values, estimators)
    "dim": ([2, 25, 50, 100, 200], ["autodiff", "stein"]),
    "width": ([64, 128, 256, 512, 1024], ["autodiff", "stein"]),
    "points": ([50, 100, 200, 400, 800], ["autodiff", "stein"]),
    "pairs": ([64, 128, 256, 512, 1024], ["stein"]),
}


def config_for(estimator: str, knob: str | None = None, value: int = 0, quant: str = "fp32"):
    cfg = json.loads(json.dumps(BASE))
    cfg["estimator"] = dict(ESTIMATORS[estimator])
    cfg["quant"] = quant
    if knob == "dim":
        cfg["problem"]["options"]["dim"] = value
    elif knob == "width":
        cfg["model"]["widths"] = [value] * 3
    elif knob == "points":
        cfg["train"]["points"] = {"interior": value, "boundary": value}
    elif knob == "pairs":
        cfg["estimator"]["pairs"] = value
    return cfg


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """In the child process: build the run, then two steps; peak memory they add."""
    from tqpinn.quant.memory import saved_bytes
    from tqpinn.train.config import config_from_dict
    from tqpinn.train.limits import memory_terms
    from tqpinn.train.trainer import build_run, train_step

    torch.set_float32_matmul_precision("highest")
    config = config_from_dict(cfg)
    run = build_run(config)
    before = rss_bytes()
    t0 = time.perf_counter()
    train_step(run, 0)
    train_step(run, 1)
    seconds = (time.perf_counter() - t0) / 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    saved = saved_bytes(lambda: train_step(run, 2), run.net)
    terms = {t.part: t.bytes for t in memory_terms(config)}
    return {
        "step_bytes": max(peak - before, 0),
        "saved_bytes": saved.total,
        "bound_bytes": sum(terms.values()),
        "bound_step_bytes": terms["activations"] + terms["perturbations"],
        "bound_terms": terms,
        "n_params": run.n_params,
        "seconds_per_step": seconds,
        "rss_before_steps": before,
    }


def run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    # glibc maps every allocation above 128 KiB separately, so freed tensors leave the RSS at
    # once and peak RSS is the peak of live memory (with its default heap the same point
    # measured 224-308 MB over repeats, mapped: 145 MB each time).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares a, b of y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def main() -> None:
    p = parser(__doc__, "bench_memory.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_memory.py",
        "ram_bytes": ram,
        "threads_per_process": 1,
        "malloc_mmap_threshold": 131072,
        "loadavg_start": load_average(),
        "base": BASE,
        "estimators": ESTIMATORS,
        "sweeps": {},
        "fits": {},
    }
    for knob, (values, estimators) in SWEEPS.items():
        for estimator in estimators:
            points = []
            for value in values:
                point = {"value": value, **run_child(config_for(estimator, knob, value))}
                print(knob, estimator, value, point.get("step_bytes", point), flush=True)
                points.append(point)
            result["sweeps"][f"{knob}/{estimator}"] = points
            ok = [p for p in points if "step_bytes" in p]
            a, b = linear_fit([p["value"] for p in ok], [p["step_bytes"] for p in ok])
            result["fits"][f"{knob}/{estimator}"] = {
                "bytes_at_zero": a,
                "bytes_per_unit": b,
                "fits_in_ram": (ram - a) / b if b > 0 else None,
                # measured step memory over the bound's per-step terms
                "step_over_bound": [p["step_bytes"] / p["bound_step_bytes"] for p in ok],
            }
    result["quant"] = {
        quant: run_child(config_for("stein", quant=quant)) for quant in ("fp32", "smx_paper")
    }
    result["loadavg_end"] = load_average()
    write_result(args.out, result)


if __name__ == "__main__":
    main()
