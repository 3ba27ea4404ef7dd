"""The whole PRS experiment: the layer-level errors of every plan (tqpinn.studies.prs), the
training runs per plan (tqpinn.studies.prs_training), and their plot."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqpinn.machine import load_average
from tqpinn.report.pyplot import pyplot
from tqpinn.studies.prs import paper_layer_errors, summarize_layer_errors
from tqpinn.studies.prs_training import train_plans

QUANT = "smx_paper"
PLOTTED_CASE = "hjb20d_hidden"


def prs_experiment(
    configs: Path,
    runs: Path,
    seeds: int = 3,
    rows: int = 4096,
    steps: int = 200,
    pairs: int = 32,
    with_training: bool = True,
    settings: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Layer errors over ``seeds`` seeds at ``rows`` rows, then (``with_training``) the
    training runs under ``runs``; ``settings`` are recorded as given. A JSON-ready dict."""
    start, load_before = time.perf_counter(), load_average()
    layers = paper_layer_errors(QUANT, rows=rows, seeds=seeds, log=log)
    summary = summarize_layer_errors(layers)
    training = train_plans(configs, runs, steps, pairs, log=log) if with_training else []
    return {
        "experiment": "prs",
        "quant": QUANT,
        "settings": dict(settings or {}),
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "wall_seconds": time.perf_counter() - start,
        "layer_summary": summary,
        "layer_runs": layers,
        "training": training,
    }


def plot_prs(
    summary: Sequence[Mapping[str, Any]], training: Sequence[Mapping[str, Any]], path: Path
) -> None:
    """Layer errors of every plan of the HJB-20D hidden layer (both merges), and the test rel-L2
    of each training run when there are any, into the PNG ``path``."""
    plt = pyplot()
    panels = 2 if training else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for merge, marker in (("fp32", "o"), ("quantized", "x")):
        rows = [r for r in summary if r["case"] == PLOTTED_CASE and r["merge"] == merge]
        labels = [r["plan"].removesuffix("+qmerge") for r in rows]
        for key, color in (
            ("rel_err_output", "C0"),
            ("rel_err_grad_input", "C1"),
            ("rel_err_grad_cores", "C2"),
        ):
            ax.plot(
                range(len(rows)),
                [r[key] for r in rows],
                marker=marker,
                color=color,
                linestyle="-" if merge == "fp32" else ":",
                label=f"{key.removeprefix('rel_err_')} ({merge} merge)",
            )
        ax.set_xticks(range(len(rows)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("relative error vs FP32")
    ax.set_title(f"{PLOTTED_CASE} (512x512, rank 2) under {QUANT}")
    ax.legend(fontsize=7)
    if training:
        ax = axes[0][1]
        problems = sorted({r["problem"] for r in training})
        plans = list(dict.fromkeys(r["plan"] for r in training))
        width = 0.8 / len(problems)
        for i, problem in enumerate(problems):
            vals = [
                next(r["rel_l2"] for r in training if r["problem"] == problem and r["plan"] == p)
                for p in plans
            ]
            ax.bar([j + i * width for j in range(len(plans))], vals, width, label=problem)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(plans))], plans, rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("test rel. L2")
        ax.set_title(f"training per plan ({QUANT} unless marked)")
        ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
