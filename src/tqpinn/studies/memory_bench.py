"""Peak memory of one training process against dimension, width, batch and Stein pairs K.

Each point runs in a fresh process (peak RSS cannot be reset within one): the run is built,
then two training steps run. Recorded per point:
  step_bytes   peak RSS during the steps minus the RSS before them: what the steps add;
  saved_bytes  what one step saves for backward (tqpinn.quant.memory.saved_bytes);
  bound_bytes  the preflight lower bound of the run (tqpinn.train.limits), and
  bound_step_bytes its per-step terms (kept activations, Stein perturbations), the part that
               step_bytes measures (parameters and test set exist before the steps);
  seconds_per_step  the two steps' mean time, by the interleaved timer: a by-product of a
               memory measurement (one thread, glibc mapping every large allocation), not a
               speed benchmark.
Sweeps vary one knob around a base (Poisson, 3 x 256 tanh, 50 interior + 50 boundary points,
Stein K = 256 or autodiff); each sweep is fitted with bytes = a + b · knob (least squares over
its points), and the knob value that fills the machine's RAM with that fit is reported as what
fits per process. Memory does not depend on timing, but the load average is recorded.

Run as a module (``python -m tqpinn.studies.memory_bench CONFIG_JSON``), it measures one point
and prints its JSON: that is the child process.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from tqpinn.machine import load_average
from tqpinn.quant.memory import saved_bytes
from tqpinn.timing import interleaved
from tqpinn.train.config import load_config
from tqpinn.train.limits import memory_terms
from tqpinn.train.trainer import build_run, train_step

BASE: dict[str, Any] = {
    "seed": 0,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [256, 256, 256]},
    "train": {"steps": 2, "eval_points": 1000, "points": {"interior": 50, "boundary": 50}},
}
ESTIMATORS: dict[str, dict[str, Any]] = {
    "autodiff": {"name": "autodiff"},
    "stein": {"name": "stein", "sigma": 0.01, "pairs": 256},
}
Sweeps = Mapping[str, tuple[Sequence[int], Sequence[str]]]
"""knob -> (its values, the estimators swept)."""
SWEEPS: Sweeps = {
    "dim": ([2, 25, 50, 100, 200], ["autodiff", "stein"]),
    "width": ([64, 128, 256, 512, 1024], ["autodiff", "stein"]),
    "points": ([50, 100, 200, 400, 800], ["autodiff", "stein"]),
    "pairs": ([64, 128, 256, 512, 1024], ["stein"]),
}
QUANTS = ("fp32", "smx_paper")
THREADS_PER_PROCESS = 1
# glibc maps every allocation above 128 KiB separately, so freed tensors leave the RSS at once
# and peak RSS is the peak of live memory (with its default heap the same point measured
# 224-308 MB over repeats, mapped: 145 MB each time).
MALLOC_MMAP_THRESHOLD = 131072
MEASURED_STEPS = 2

Log = Callable[[str], None]


KNOBS: dict[str, tuple[tuple[str, ...], Callable[[int], Any]]] = {
    # knob: (its path in the config, the config value of a knob value)
    "dim": (("problem", "options", "dim"), int),
    "width": (("model", "widths"), lambda v: [v] * 3),
    "points": (("train", "points"), lambda v: {"interior": v, "boundary": v}),
    "pairs": (("estimator", "pairs"), int),
}


def _set_knob(cfg: dict[str, Any], knob: str, value: int) -> None:
    if knob not in KNOBS:
        raise ValueError(f"unknown knob {knob!r}; choose from {list(KNOBS)}")
    (*path, last), to_config = KNOBS[knob]
    node = cfg
    for key in path:
        node = node[key]
    node[last] = to_config(value)


def config_for(
    estimator: str,
    knob: str | None = None,
    value: int = 0,
    quant: str = "fp32",
    base: Mapping[str, Any] = BASE,
) -> dict[str, Any]:
    """The config (a plain dict) of one point: ``base`` with ``estimator``, ``quant`` and the
    knob set to ``value`` (no knob: the base itself)."""
    cfg = copy.deepcopy(dict(base))
    cfg["estimator"] = dict(ESTIMATORS[estimator])
    cfg["quant"] = quant
    if knob is not None:
        _set_knob(cfg, knob, value)
    return cfg


def rss_bytes() -> int:
    """Resident set size of this process now (bytes; Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """In the child process: build the run, then two steps; the peak memory they add."""
    torch.set_float32_matmul_precision("highest")
    config = load_config(None, [f"{key}={json.dumps(value)}" for key, value in cfg.items()])
    run = build_run(config)
    before = rss_bytes()
    steps = itertools.count()
    seconds = interleaved({"step": lambda: train_step(run, next(steps))}, MEASURED_STEPS, warmup=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    saved = saved_bytes(lambda: train_step(run, next(steps)), run.net)
    terms = {t.part: t.bytes for t in memory_terms(config)}
    return {
        "step_bytes": max(peak - before, 0),
        "saved_bytes": saved.total,
        "bound_bytes": sum(terms.values()),
        "bound_step_bytes": terms["activations"] + terms["perturbations"],
        "bound_terms": terms,
        "n_params": run.n_params,
        "seconds_per_step": sum(seconds["step"]) / MEASURED_STEPS,
        "rss_before_steps": before,
    }


def run_child(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``measure(cfg)`` in a fresh process with one thread; ``{"error": last line}`` if it
    failed."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(THREADS_PER_PROCESS),
        "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD),
    }
    result = subprocess.run(
        [sys.executable, "-m", __name__, json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares a, b of y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def fit_sweep(points: Sequence[Mapping[str, Any]], ram: int) -> dict[str, Any]:
    """The straight-line fit of one sweep's measured points (failed points left out), the knob
    value that fills ``ram`` bytes with it, and each point's measured step bytes over its
    bound's per-step terms."""
    ok = [p for p in points if "step_bytes" in p]
    a, b = linear_fit([p["value"] for p in ok], [p["step_bytes"] for p in ok])
    return {
        "bytes_at_zero": a,
        "bytes_per_unit": b,
        "fits_in_ram": (ram - a) / b if b > 0 else None,
        "step_over_bound": [p["step_bytes"] / p["bound_step_bytes"] for p in ok],
    }


def physical_ram() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def bench_memory(
    sweeps: Sweeps = SWEEPS,
    quants: Sequence[str] = QUANTS,
    base: Mapping[str, Any] = BASE,
    log: Log = lambda line: None,
) -> dict[str, Any]:
    """Every sweep point and the Stein base under each preset of ``quants``, each in its own
    process; ``log`` gets one line per sweep point. A JSON-ready dict."""
    ram = physical_ram()
    result: dict[str, Any] = {
        "ram_bytes": ram,
        "threads_per_process": THREADS_PER_PROCESS,
        "malloc_mmap_threshold": MALLOC_MMAP_THRESHOLD,
        "loadavg_start": load_average(),
        "base": dict(base),
        "estimators": ESTIMATORS,
        "sweeps": {},
        "fits": {},
    }
    for knob, (values, estimators) in sweeps.items():
        for estimator in estimators:
            points = []
            for value in values:
                point = {"value": value, **run_child(config_for(estimator, knob, value, base=base))}
                log(f"{knob} {estimator} {value} {point.get('step_bytes', point)}")
                points.append(point)
            result["sweeps"][f"{knob}/{estimator}"] = points
            result["fits"][f"{knob}/{estimator}"] = fit_sweep(points, ram)
    result["quant"] = {
        quant: run_child(config_for("stein", quant=quant, base=base)) for quant in quants
    }
    result["loadavg_end"] = load_average()
    return result


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
