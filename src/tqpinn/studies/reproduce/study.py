"""`tqpinn reproduce`: train every variant of every chosen problem, measure, and report."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tqpinn import __version__
from tqpinn.machine import load_average, machine_info
from tqpinn.studies.reproduce.recipes import BUDGETS, CONFIGS_DIR, PROBLEMS, TITLES, variant_configs
from tqpinn.studies.reproduce.report import write_report
from tqpinn.studies.reproduce.runner import (
    Log,
    error_history,
    memory_of,
    step_times,
    train_or_reuse,
    validate_names,
)
from tqpinn.studies.reproduce.variants import VARIANTS, VARIANTS_BY_KEY

RESULT_KEYS = ("rel_l2", "rel_l1", "max_abs_err", "n_params", "steps", "wall_seconds")


def reproduce(
    out: Path,
    budget: str = "quick",
    problems: Sequence[str] = PROBLEMS,
    variants: Sequence[str] | None = None,
    timing_rounds: int = 3,
    log: Log = print,
    device: str = "cpu",
    configs_dir: Path = CONFIGS_DIR,
) -> dict[str, Any]:
    """Train, measure and report the ablation into ``out`` (results.json, results.md, img/),
    on ``device`` ("cpu" or "cuda"); every variant is made from the problem's full-pipeline
    file in ``configs_dir`` (:mod:`tqpinn.studies.reproduce.recipes`).

    Resumable: finished runs are reused, interrupted ones resumed (see
    :mod:`tqpinn.studies.reproduce.runner`). Returns the content of results.json.
    """
    validate_names([budget], BUDGETS, "budget")
    problems = validate_names(list(problems), PROBLEMS, "problems")
    keys = validate_names(
        list(variants or [v.key for v in VARIANTS]), list(VARIANTS_BY_KEY), "variants"
    )
    chosen = [v for v in VARIANTS if v.key in keys]
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "budget": budget,
        "tqpinn": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "device": "cpu"
        if torch.device(device).type == "cpu"
        else torch.cuda.get_device_name(device),
        "cpu_count": os.cpu_count(),
        "loadavg_start": load_average(),
        "machine_info": machine_info(device),
        "problems": {},
    }
    for name in problems:
        log(f"{name}: {TITLES[name]}")
        configs = variant_configs(budget, name, chosen, configs_dir)
        rows: dict[str, Any] = {}
        for v in chosen:
            run_dir = out / "runs" / name / v.key
            summary = train_or_reuse(configs[v.key], run_dir, log, device)
            rows[v.key] = {
                "label": v.label,
                **{k: summary.get(k) for k in RESULT_KEYS},
                "saved_bytes": memory_of(configs[v.key], run_dir),
                "history": error_history(run_dir),
                "config": configs[v.key].to_dict(),
            }
        timing_path = out / "runs" / name / "timing.json"
        timing = step_times(configs, timing_path, timing_rounds, log, device)
        for key, row in rows.items():
            row["step_seconds"] = timing["seconds"][key]
        results["problems"][name] = {
            "title": TITLES[name],
            "variants": rows,
            "timing": {k: timing[k] for k in ("rounds", "threads", "loadavg_start", "loadavg_end")},
        }
    results["loadavg_end"] = load_average()
    results["elapsed_seconds"] = time.perf_counter() - t0
    write_report(results, out)
    return results
