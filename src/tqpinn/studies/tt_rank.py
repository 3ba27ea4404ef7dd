"""The TT-rank and placement study: which TT layers, at which rank, keep a pipeline accurate.

A grid point changes only ``model.tt`` of a problem's full-pipeline config: its ranks, the
layers that are TT (the placement) and the initialisation. Each point trains as chosen series
of the reproduce ablation (:mod:`tqpinn.studies.reproduce`): FP32-SE TT, the Stein full
pipeline and the taylor full pipeline, against the dense references of the same budget; every
run goes through :func:`tqpinn.studies.reproduce.runner.train_or_reuse`, so a study is
resumable and reuses what it finished.

Layout under ``out``: ``runs/<problem>/<series>/<point>/seed_<s>/`` per grid run and
``runs/<problem>/<reference>/seed_<s>/`` per dense reference.

The selection rule, per quantized pipeline series: among the points whose pipeline reaches
rel-L2 (``metric``) at most ``target`` times the reference's, the one with the fewest
parameters (the highest compression); a tie goes to the lower error. None when no point qualifies. The rule of record
is against FP32-SE dense (Stein at the study's pairs); the same rule against FP32-AD dense
(exact derivatives, like the taylor pipeline) is given beside it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import UserError
from tqpinn.machine import load_average, machine_info
from tqpinn.report.pyplot import pyplot
from tqpinn.studies.reproduce.cap import NO_CAP, BudgetCap
from tqpinn.studies.reproduce.recipes import CONFIGS_DIR, TITLES, recipe_numbers, variant_configs
from tqpinn.studies.reproduce.runner import Log, seed_run_dir, train_or_reuse
from tqpinn.studies.reproduce.variants import VARIANTS_BY_KEY
from tqpinn.train.config import Config, config_from_dict

PLACEMENTS: dict[str, tuple[int, ...]] = {"both": (1, 2), "first": (1,)}
"""Placement name -> the 0-based layers made TT: both hidden-to-hidden layers, or the first."""

RANKS = (2, 4, 8, 16)
INITS = ("xavier",)
REFERENCE = "fp32_se_dense"
REFERENCES = (REFERENCE, "fp32_ad_dense")
"""Dense FP32 runs of the same budget; the first is the selection rule's of record."""
SERIES = ("fp32_se_tt", "full_pipeline", "full_pipeline_taylor")
"""Reproduce variants a grid point can train as, FP32 first."""
PIPELINES = SERIES[1:]
"""The quantized pipelines: the selection rule reads each one that ran."""
DEFAULT_SERIES = ("fp32_se_tt", "full_pipeline_taylor")
"""The cheap pair: at the recipes' Stein pairs a Stein pipeline step costs seconds on a CPU."""

METRICS = ("rel_l2", "rel_l2_fp32")
"""rel_l2: the trained network as it runs (quantized GEMMs for a quantized run); rel_l2_fp32:
its weights evaluated with FP32 GEMMs (an FP32 run's own rel_l2)."""

TARGET = 1.5
RUN_KEYS = ("n_params", "rel_l2", "rel_l2_fp32", "wall_seconds", "steps")


@dataclass(frozen=True)
class GridPoint:
    """One TT recipe: ``rank`` of every inner bond, TT ``placement`` (a key of PLACEMENTS),
    core ``init`` (a TT init of the config)."""

    rank: int
    placement: str
    init: str

    @property
    def key(self) -> str:
        """Run directory name, e.g. "r4_both_xavier"."""
        return f"r{self.rank}_{self.placement}_{self.init}"

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """Plain config ``data`` (with TT layers) with this point's TT options. Factor shapes
        the config gives for a kept layer stay; a layer it did not make TT is factored
        automatically."""
        tt = data["model"]["tt"]
        layers = PLACEMENTS[self.placement]
        given = dict(zip(tt["layers"], tt["shapes"] or [None] * len(tt["layers"]), strict=True))
        shapes = [given.get(layer) for layer in layers]
        new_tt = {
            **tt,
            "layers": list(layers),
            "ranks": self.rank,
            "init": self.init,
            "shapes": shapes if any(s is not None for s in shapes) else None,
        }
        return {**data, "model": {**data["model"], "tt": new_tt}}


def grid(
    ranks: Sequence[int] = RANKS,
    placements: Sequence[str] = tuple(PLACEMENTS),
    inits: Sequence[str] = INITS,
) -> list[GridPoint]:
    """Every (rank, placement, init), rank slowest; unknown placements or ranks below 1 are
    UserErrors."""
    bad = [p for p in placements if p not in PLACEMENTS]
    if bad:
        raise UserError(f"unknown placements {bad}; choose from {list(PLACEMENTS)}")
    low = [r for r in ranks if isinstance(r, bool) or not isinstance(r, int) or r < 1]
    if low:
        raise UserError(f"TT ranks must be positive integers, got {low}")
    return [GridPoint(*p) for p in itertools.product(ranks, placements, inits)]


def study_configs(
    points: Sequence[GridPoint],
    budget: str = "paper",
    problem: str = "poisson2d",
    cap: BudgetCap = NO_CAP,
    configs_dir: Path = CONFIGS_DIR,
) -> dict[str, Any]:
    """Per dense reference and, per series, point key -> its config: ``{"references":
    {reference: Config}, "series": {series: {point key: Config}}}``."""
    chosen = [VARIANTS_BY_KEY[key] for key in (*REFERENCES, *SERIES)]
    base = variant_configs(budget, problem, chosen, configs_dir, cap)
    series = {
        name: {p.key: config_from_dict(p.apply(base[name].to_dict())) for p in points}
        for name in SERIES
    }
    return {"references": {key: base[key] for key in REFERENCES}, "series": series}


def _run(config: Config, variant_dir: Path, log: Log) -> dict[str, Any]:
    summary = train_or_reuse(config, seed_run_dir(variant_dir, config.seed), log)
    summary.setdefault("rel_l2_fp32", summary["rel_l2"])  # an FP32 run: the same number
    return {k: summary[k] for k in RUN_KEYS}


def choose(
    rows: Mapping[str, Mapping[str, Any]],
    reference: Mapping[str, Any],
    metric: str = "rel_l2",
    target: float = TARGET,
) -> dict[str, Any] | None:
    """The selection rule over ``rows`` (point key -> a run's record with ``n_params`` and
    ``metric``): the fewest parameters among the rows with ``metric`` <= ``target`` x the
    reference's ``metric``, the lower error on a tie. None when no row qualifies."""
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose from {list(METRICS)}")
    bound = target * reference[metric]
    within = [key for key, row in rows.items() if row[metric] <= bound]
    if not within:
        return None
    key = min(within, key=lambda k: (rows[k]["n_params"], rows[k][metric]))
    return {
        "point": key,
        "n_params": rows[key]["n_params"],
        metric: rows[key][metric],
        "ratio": rows[key][metric] / reference[metric],
        "compression": reference["n_params"] / rows[key]["n_params"],
    }


def current_point(pipeline: Config) -> str:
    """Key of the grid point the pipeline config itself trains ("" if its TT layers are no
    placement of the grid)."""
    tt = pipeline.model.tt
    names = [name for name, layers in PLACEMENTS.items() if list(layers) == tt.layers]
    rank = tt.ranks if isinstance(tt.ranks, int) else None
    return GridPoint(rank, names[0], tt.init).key if names and rank else ""


def tt_rank_study(
    out: Path,
    points: Sequence[GridPoint],
    budget: str = "paper",
    problem: str = "poisson2d",
    cap: BudgetCap = NO_CAP,
    series: Sequence[str] = DEFAULT_SERIES,
    target: float = TARGET,
    log: Log = print,
    configs_dir: Path = CONFIGS_DIR,
    max_rank: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Train (or reuse) the dense references and every point of ``series`` under ``out``; the
    JSON-ready result: the runs, the choice per pipeline series that ran, reference and metric
    (None where no point qualifies), the current recipe's point. ``max_rank``:
    series -> the highest rank it trains, a budget limit (its points above are left out)."""
    max_rank = dict(max_rank or {})
    bad = [s for s in [*series, *max_rank] if s not in SERIES]
    if bad:
        raise UserError(f"unknown series {bad}; choose from {list(SERIES)}")
    ranks = {p.key: p.rank for p in points}
    configs = study_configs(points, budget, problem, cap, configs_dir)
    recipe = recipe_numbers(budget, problem, configs_dir)
    log(f"{problem}: {TITLES[problem]}, {cap.describe(budget, recipe)}")
    root = out / "runs" / problem
    t0, load_start = time.perf_counter(), load_average()
    references = {key: _run(c, root / key, log) for key, c in configs["references"].items()}
    rows = {
        name: {
            key: _run(c, root / name / key, log)
            for key, c in configs["series"][name].items()
            if ranks[key] <= max_rank.get(name, ranks[key])
        }
        for name in series
    }
    pipelines = [name for name in PIPELINES if name in rows]
    return {
        "problem": problem,
        "title": TITLES[problem],
        "budget": budget,
        "budget_line": cap.describe(budget, recipe),
        "cap": {"steps": cap.steps, "pairs": cap.pairs},
        "target": target,
        "max_rank": max_rank,
        "points": [
            {**vars(p), "key": p.key, "layers": list(PLACEMENTS[p.placement])} for p in points
        ],
        "reference": {"variant": REFERENCE, **references[REFERENCE]},
        "references": references,
        "series": rows,
        "current": current_point(
            variant_configs(budget, problem, configs_dir=configs_dir)[PIPELINES[0]]
        ),
        "choice": {
            name: {
                ref: {m: choose(rows[name], row, m, target) for m in METRICS}
                for ref, row in references.items()
            }
            for name in pipelines
        },
        "configs": {
            name: {key: c.to_dict() for key, c in configs["series"][name].items()}
            for name in pipelines
        },
        "threads": torch.get_num_threads(),
        "loadavg_start": load_start,
        "loadavg_end": load_average(),
        "elapsed_seconds": time.perf_counter() - t0,
        "machine": machine_info(),
    }


MARKERS = {"both": "o", "first": "s"}
COLOURS = {
    "fp32_se_tt": "tab:blue",
    "full_pipeline": "tab:green",
    "full_pipeline_taylor": "tab:orange",
}


def plot_tt_rank(result: Mapping[str, Any], path: Path) -> None:
    """Parameters against rel-L2 (log-log): one marker per placement, one colour per series
    (the quantized series at its quantized rel-L2), each point labelled with its rank; the
    dense references as points and lines, and the target line over FP32-SE dense."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    points = {p["key"]: p for p in result["points"]}
    for name, rows in result["series"].items():
        for placement, marker in MARKERS.items():
            keys = [k for k in rows if points[k]["placement"] == placement]
            if not keys:
                continue
            xs = [rows[k]["n_params"] for k in keys]
            ys = [rows[k]["rel_l2"] for k in keys]
            label = f"{VARIANTS_BY_KEY[name].label}, TT layers {points[keys[0]]['layers']}"
            ax.loglog(xs, ys, marker, color=COLOURS[name], label=label, ls="none", ms=6)
            for k, x, y in zip(keys, xs, ys, strict=True):
                ax.annotate(
                    f"r{points[k]['rank']}",
                    (x, y),
                    xytext=(4, 3),
                    fontsize=7,
                    textcoords="offset points",
                )
    ref = result["reference"]
    ax.loglog([ref["n_params"]], [ref["rel_l2"]], "k*", ms=10, label="FP32-SE dense")
    ax.axhline(ref["rel_l2"], color="k", lw=0.8, ls="-")
    ad = result["references"].get("fp32_ad_dense")
    if ad is not None:
        ax.loglog([ad["n_params"]], [ad["rel_l2"]], "kP", ms=8, label="FP32-AD dense")
        ax.axhline(ad["rel_l2"], color="k", lw=0.8, ls=":")
    target = result["target"]
    ax.axhline(target * ref["rel_l2"], color="k", lw=0.8, ls="--", label=f"{target}x FP32-SE dense")
    ax.set_xlabel("network parameters")
    ax.set_ylabel("rel. L2 error")
    ax.set_title(f"{result['title']}: TT rank and placement ({result['budget_line']})", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
