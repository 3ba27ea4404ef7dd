"""`tqpinn reproduce`: train every variant of every chosen problem, measure, and report."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from tqpinn import __version__
from tqpinn.machine import load_average, machine_info
from tqpinn.studies.reproduce.cap import NO_CAP, BudgetCap
from tqpinn.studies.reproduce.recipes import (
    BUDGETS,
    CONFIGS_DIR,
    PROBLEMS,
    TITLES,
    recipe_numbers,
    variant_configs,
)
from tqpinn.studies.reproduce.report import write_report
from tqpinn.studies.reproduce.runner import (
    Log,
    error_history,
    memory_of,
    refuse_single_seed_layout,
    seed_run_dir,
    step_times,
    train_or_reuse,
    validate_names,
    validate_seeds,
)
from tqpinn.studies.reproduce.spread import spread
from tqpinn.studies.reproduce.variants import VARIANTS, VARIANTS_BY_KEY, Variant
from tqpinn.train.config import Config, config_from_dict

SEED_KEYS = ("rel_l2", "rel_l1", "max_abs_err", "rel_l2_fp32", "steps", "wall_seconds")
"""What a row keeps of each seed's run summary (metrics.json), beside its error history."""

SPREAD_KEYS = ("rel_l2", "rel_l1", "max_abs_err", "rel_l2_fp32")
"""Metrics given as mean and spread over the seeds; the row's own value is the mean.
``rel_l2_fp32``: the trained weights evaluated with FP32 GEMMs (tqpinn.train.evaluate); an FP32
run's own rel_l2."""


def with_seed(config: Config, seed: int) -> Config:
    """``config`` with its ``seed`` replaced (the seed of sampling, initialisation, Stein)."""
    return config_from_dict({**config.to_dict(), "seed": seed})


def variant_row(
    variant: Variant,
    config: Config,
    variant_dir: Path,
    seeds: Sequence[int],
    log: Log,
    device: str,
) -> dict[str, Any]:
    """Train or reuse ``config`` once per seed; the row of results.json: per-seed results,
    means (``rel_l2``, ...) and their ``spread``, and what does not depend on the seed."""
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        run_dir = seed_run_dir(variant_dir, seed)
        summary = train_or_reuse(with_seed(config, seed), run_dir, log, device)
        summary.setdefault("rel_l2_fp32", summary.get("rel_l2"))  # FP32 runs: the same number
        per_seed[str(seed)] = {
            **{k: summary.get(k) for k in SEED_KEYS},
            "history": error_history(run_dir),
        }
    first = seed_run_dir(variant_dir, seeds[0])
    spreads = {k: spread([run[k] for run in per_seed.values()]) for k in SPREAD_KEYS}
    return {
        "label": variant.label,
        **{k: s["mean"] for k, s in spreads.items()},
        "spread": spreads,
        "seeds": per_seed,
        "n_params": summary.get("n_params"),
        "steps": summary.get("steps"),
        # Saved bytes follow from shapes and formats alone: the first seed's run stands for all.
        "saved_bytes": memory_of(with_seed(config, seeds[0]), first),
        "config": with_seed(config, seeds[0]).to_dict(),
    }


def reproduce(
    out: Path,
    budget: str = "quick",
    problems: Sequence[str] = PROBLEMS,
    variants: Sequence[str] | None = None,
    timing_rounds: int = 3,
    log: Log = print,
    device: str = "cpu",
    configs_dir: Path = CONFIGS_DIR,
    seeds: Sequence[int] | None = None,
    cap: BudgetCap = NO_CAP,
) -> dict[str, Any]:
    """Train, measure and report the ablation into ``out`` (results.json, results.md, img/),
    on ``device`` ("cpu" or "cuda"); every variant is made from the problem's full-pipeline
    file in ``configs_dir`` (:mod:`tqpinn.studies.reproduce.recipes`), with the budget ``cap``
    in place (:mod:`tqpinn.studies.reproduce.cap`), and trains once per seed of ``seeds``
    (None: the config's own seed).

    Resumable: finished runs are reused, interrupted ones resumed (see
    :mod:`tqpinn.studies.reproduce.runner`). Returns the content of results.json.
    """
    validate_names([budget], BUDGETS, "budget")
    problems = validate_names(list(problems), PROBLEMS, "problems")
    keys = validate_names(
        list(variants or [v.key for v in VARIANTS]), list(VARIANTS_BY_KEY), "variants"
    )
    chosen_seeds = None if seeds is None else validate_seeds(seeds)
    chosen = [v for v in VARIANTS if v.key in keys]
    for name in problems:  # before any training: nothing half done on a refused directory
        for v in chosen:
            refuse_single_seed_layout(out / "runs" / name / v.key)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        "budget": budget,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cap": {"steps": cap.steps, "pairs": cap.pairs},
        "seeds": chosen_seeds,
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
        recipe = recipe_numbers(budget, name, configs_dir)
        log(f"  {cap.describe(budget, recipe)}")
        configs = variant_configs(budget, name, chosen, configs_dir, cap)
        rows: dict[str, Any] = {}
        for v in chosen:
            config = configs[v.key]
            run_seeds = chosen_seeds or [config.seed]
            rows[v.key] = variant_row(
                v, config, out / "runs" / name / v.key, run_seeds, log, device
            )
        timed = {key: config_from_dict(row["config"]) for key, row in rows.items()}
        timing_path = out / "runs" / name / "timing.json"
        timing = step_times(timed, timing_path, timing_rounds, log, device)
        for key, row in rows.items():
            row["step_seconds"] = timing["seconds"][key]
        results["problems"][name] = {
            "title": TITLES[name],
            "recipe": recipe,
            "budget_line": cap.describe(budget, recipe),
            "variants": rows,
            "timing": {k: timing[k] for k in ("rounds", "threads", "loadavg_start", "loadavg_end")},
        }
    results["loadavg_end"] = load_average()
    results["elapsed_seconds"] = time.perf_counter() - t0
    write_report(results, out)
    return results
