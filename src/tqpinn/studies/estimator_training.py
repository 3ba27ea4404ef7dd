"""Every estimator trained on the three paper recipes, interleaved in one run.

A recipe is ``configs/<problem>_fp32_ad.yaml`` (PAPER_NOTES.md section 7: Poisson-2D, HJB-20D,
Heat-100D, dense layers at the recipe widths, all conditions, the recipe's points, weights and
linear schedule) with the estimator and the quant preset of a row changed; Stein's sigma and
value come from ``<problem>_fp32_se.yaml``, its pairs K from the row (64) or from that file (the
recipe's K). Every row of a recipe starts from the same seeded network.

Per row: network rows per interior point, the median seconds of a full training step
(:func:`tqpinn.train.trainer.train_step`: fresh points, every condition, backward, Adam),
the bytes its first step saves for backward (:func:`tqpinn.quant.memory.saved_bytes`, untimed;
the second step is an untimed warm-up round) and rel-L2 on the recipe's test set after ``steps`` steps. The rows take turns, one step each
per round (:func:`tqpinn.timing.interleaved`), so machine load falls on all alike. Rows at the
recipe's K cost seconds a step: they are trained for ``short_steps`` only (their schedule
compressed to that length) and take part only in the first rounds; every row's rel-L2 is also
taken at that step count (``rel_l2_at_short``, mid-schedule for the others).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tqpinn.derivatives.columns import column_count
from tqpinn.errors import UserError
from tqpinn.machine import load_average
from tqpinn.quant.memory import saved_bytes
from tqpinn.studies.reproduce.recipes import CONFIGS_DIR
from tqpinn.timing import interleaved
from tqpinn.train.config import Config, config_from_dict, load_config
from tqpinn.train.evaluate import evaluate
from tqpinn.train.run import Run, build_run
from tqpinn.train.trainer import train_step

RECIPES = ("poisson2d", "hjb20d", "heat100d")
BASELINE = "fp32_autodiff"
SHORT_PAIRS = 64
NO_CHANGES: Mapping[str, Any] = {}


@dataclass(frozen=True)
class Row:
    """One estimator under one preset. estimator: config keys over the recipe's Stein section
    (for ``stein``) or alone; recipe_pairs: Stein at the recipe's K (trained ``short_steps``)."""

    key: str
    quant: str
    estimator: dict[str, Any] = field(hash=False)
    recipe_pairs: bool = False


ROWS: tuple[Row, ...] = (
    Row("fp32_autodiff", "fp32", {"name": "autodiff"}),
    Row("fp32_stein_K64", "fp32", {"name": "stein", "pairs": SHORT_PAIRS}),
    Row("fp32_stein_Krecipe", "fp32", {"name": "stein"}, recipe_pairs=True),
    Row("fp32_stencil", "fp32", {"name": "stencil", "h": 0.01}),
    Row("fp32_taylor", "fp32", {"name": "taylor"}),
    Row("smx_autodiff", "smx_paper", {"name": "autodiff"}),
    Row(
        "smx_stein_K64",
        "smx_paper",
        {"name": "stein", "pairs": SHORT_PAIRS, "diffquant": "full"},
    ),
    Row("smx_stein_Krecipe", "smx_paper", {"name": "stein", "diffquant": "full"}, True),
    Row("smx_stencil", "smx_paper", {"name": "stencil", "h": 0.01, "diffquant": "full"}),
    # The naive stencil (stacked rows x ± h e_i): h = 0.01 is below the INT8 input grid.
    Row("smx_stencil_naive", "smx_paper", {"name": "stencil", "h": 0.01, "diffquant": "off"}),
    Row("smx_taylor", "smx_paper", {"name": "taylor"}),
)
ROW_KEYS = tuple(r.key for r in ROWS)

Log = Callable[[str], None]


def select_rows(keys: Sequence[str] | None, rows: Sequence[Row] = ROWS) -> tuple[Row, ...]:
    """The rows named by ``keys`` (None: all), in table order; an unknown key raises UserError."""
    if keys is None:
        return tuple(rows)
    known = {r.key for r in rows}
    for key in keys:
        if key not in known:
            raise UserError(f"unknown row {key!r}; choose from {[r.key for r in rows]}")
    return tuple(r for r in rows if r.key in keys)


def row_config(
    recipe: str,
    row: Row,
    steps: int,
    changes: Mapping[str, Any] = NO_CHANGES,
    folder: Path = CONFIGS_DIR,
) -> Config:
    """The recipe's FP32 autodiff config with ``row``'s estimator and preset, ``steps`` long;
    ``changes`` (dotted key -> value, e.g. ``{"model.widths": [8, 8]}``) applied last."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; choose from {list(RECIPES)}")
    data = load_config(folder / f"{recipe}_fp32_ad.yaml").to_dict()
    estimator = dict(row.estimator)
    if estimator["name"] == "stein":
        stein = load_config(folder / f"{recipe}_fp32_se.yaml").to_dict()["estimator"]
        estimator = {**stein, **estimator}
    data["estimator"] = estimator
    data["quant"] = row.quant
    data["train"]["steps"] = steps
    for key, value in changes.items():
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return config_from_dict(data)


def interior_rows_per_point(run: Run) -> int:
    """Network rows one interior point costs in the forward pass: autodiff 1 (its Laplacian
    adds one second-order reverse pass per spatial direction), Stein 2K + 1, the stencil
    2C + 1, Taylor 1 + C + 1 (C: input columns differentiated)."""
    problem, estimator = run.problem, run.config.estimator
    interior = run.conditions[0]
    needs = problem.network_needs(interior.needs)
    columns = column_count(needs, problem.dim, problem.input_dim)
    per_estimator = {
        "autodiff": 1,
        "stein": 2 * _stein_pairs(estimator) + 1,
        "stencil": 2 * columns + 1,
        "taylor": 2 + columns,
    }
    return per_estimator[estimator.name]


def _stein_pairs(estimator: Any) -> int:
    """Stein's K; 0 for the other estimators (whose sections have no pairs)."""
    return estimator.pairs if estimator.name == "stein" else 0


def _stepper(run: Run, first: int) -> Callable[[], object]:
    counter = itertools.count(first)
    return lambda: train_step(run, next(counter))


def _rel_l2(run: Run) -> float:
    with torch.no_grad():
        return evaluate(run)["rel_l2"]


def train_recipe(
    recipe: str,
    rows: Sequence[Row],
    steps: int,
    short_steps: int,
    changes: Mapping[str, Any] = NO_CHANGES,
    log: Log = lambda line: None,
) -> dict[str, dict[str, Any]]:
    """Each of ``rows`` trained on ``recipe``, interleaved: ``steps`` steps (``short_steps`` for
    the rows at the recipe's K). Row key -> its measurements (module docstring)."""
    if not 3 <= short_steps <= steps:
        raise UserError(f"need 3 <= short_steps <= steps, got {short_steps} and {steps}")
    runs = {
        r.key: build_run(row_config(recipe, r, short_steps if r.recipe_pairs else steps, changes))
        for r in rows
    }
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = runs[row.key]
        out[row.key] = {
            "quant": row.quant,
            "estimator": run.config.estimator.model_dump(mode="json"),
            "rows_per_point": interior_rows_per_point(run),
            "steps": run.config.train.steps,
            "saved_bytes": saved_bytes(lambda run=run: train_step(run, 0), run.net).total,
        }
    start = time.time()
    steppers = {key: _stepper(run, 1) for key, run in runs.items()}
    times = interleaved(steppers, short_steps - 2, warmup=1)
    for key, run in runs.items():
        out[key]["rel_l2_at_short"] = _rel_l2(run)
    log(f"{recipe}: {short_steps} steps of every row in {time.time() - start:.0f} s")
    long_rows = {r.key: steppers[r.key] for r in rows if not r.recipe_pairs}
    if steps > short_steps and long_rows:
        more = interleaved(long_rows, steps - short_steps, warmup=0)
        for key, ts in more.items():
            times[key] = times[key] + ts
    for key, run in runs.items():
        ts = times[key]
        out[key] |= {
            "timed_steps": len(ts),
            "step_median_s": statistics.median(ts),
            "step_min_s": min(ts),
            "rel_l2": _rel_l2(run),
            "loadavg_after": load_average(),
        }
        log(
            f"{recipe} {key}: {out[key]['step_median_s']:.4f} s/step, rel-L2 {out[key]['rel_l2']:.3e}"
        )
    return out


def add_ratios(rows: Mapping[str, dict[str, Any]], baseline: str = BASELINE) -> None:
    """``ratio_vs_<baseline>``: each row's median step over the baseline row's (when present)."""
    if baseline not in rows:
        return
    base = rows[baseline]["step_median_s"]
    for r in rows.values():
        r[f"ratio_vs_{baseline}"] = r["step_median_s"] / base


def bench_estimator_training(
    steps: Mapping[str, int],
    short_steps: int,
    rows: Sequence[Row] = ROWS,
    changes: Mapping[str, Any] = NO_CHANGES,
    log: Log = lambda line: None,
) -> dict[str, Any]:
    """Every recipe of ``steps`` (recipe -> its step count) with ``rows``, each recipe's config
    with ``changes`` (tests shrink the networks); a JSON-ready dict."""
    result: dict[str, Any] = {
        "short_steps": short_steps,
        "loadavg_start": load_average(),
        "threads": torch.get_num_threads(),
        "changes": dict(changes),
        "recipes": {},
    }
    for recipe, n in steps.items():
        trained = train_recipe(recipe, rows, n, short_steps, changes, log)
        add_ratios(trained)
        result["recipes"][recipe] = {
            "steps": n,
            "recipe_steps": load_config(CONFIGS_DIR / f"{recipe}_fp32_ad.yaml").train.steps,
            "rows": trained,
        }
    result["loadavg_end"] = load_average()
    return result


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` (a result of :func:`bench_estimator_training`) with the rows of ``new`` in place
    of their old measurements, in table order; each new row keeps its run's settings under
    "run" (a recipe whose rows were all re-run takes the new step count), and the ratios are
    recomputed over the merged rows."""
    settings = {k: new.get(k) for k in ("command", "short_steps", "loadavg_start", "threads")}
    for recipe, section in new["recipes"].items():
        for row in section["rows"].values():
            row["run"] = {**settings, "steps": section["steps"]}
        if recipe not in old["recipes"]:
            old["recipes"][recipe] = section
            continue
        kept = old["recipes"][recipe]
        if set(section["rows"]) >= set(kept["rows"]):  # every row re-run: the new step count
            kept["steps"] = section["steps"]
        rows = kept["rows"] | section["rows"]
        kept["rows"] = {k: rows[k] for k in ROW_KEYS if k in rows}
        add_ratios(kept["rows"])
    return old
