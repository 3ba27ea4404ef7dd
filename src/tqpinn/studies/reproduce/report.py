"""results.json, results.md (one table per problem, the done-when ratios) and error plots.

Errors are means over the seeds, with their sample standard deviation and the number of seeds;
a ratio to FP32-SE dense is called a difference only where the seed ranges do not overlap
(:mod:`tqpinn.studies.reproduce.spread`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqpinn.report.pyplot import pyplot
from tqpinn.studies.reproduce.cap import BudgetCap
from tqpinn.studies.reproduce.spread import mean_and_std, outside_spread
from tqpinn.studies.reproduce.variants import (
    AUTODIFF_REFERENCE,
    NAIVE,
    PIPELINE,
    REFERENCE,
    TAYLOR_PIPELINE,
)
from tqpinn.train.checkpoint import atomic_write_text

PIPELINE_TARGET = 1.5
"""Done-when of issue 5: the full pipeline's rel-L2 at most 1.5x the FP32-SE dense one."""


def _bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def _ratio(
    rows: dict[str, Any], key: str, reference: str = REFERENCE, metric: str = "rel_l2"
) -> float | None:
    if key not in rows or reference not in rows:
        return None
    return rows[key][metric] / rows[reference]["rel_l2"]


def _difference(
    rows: dict[str, Any], key: str, reference: str = REFERENCE, metric: str = "rel_l2"
) -> str:
    """Whether ``key``'s ``metric`` differs from ``reference``'s rel-L2 by more than the seed
    spread."""
    row, ref = rows[key]["spread"][metric], rows[reference]["spread"]["rel_l2"]
    seeds = f"means of {row['n']} and {ref['n']} seeds"
    called = outside_spread(row, ref)
    if called is None:
        return f"{seeds}; too few seeds for a spread: no difference called"
    if called:
        return f"{seeds}; the seed ranges do not overlap: the difference is outside the spread"
    return f"{seeds}; the seed ranges overlap: no difference called"


def problem_table(rows: dict[str, Any]) -> list[str]:
    """Markdown table rows of one problem, with step times relative to FP32-SE dense."""
    ref_time = rows[REFERENCE]["step_seconds"] if REFERENCE in rows else None
    lines = [
        "| variant | rel-L2 (mean ± std) | rel-L2, FP32 inference | rel-L1 (mean ± std) | params "
        "| saved for backward | step time | vs FP32-SE | steps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        speed = f"{row['step_seconds'] / ref_time:.2f}x" if ref_time else "n/a"
        lines.append(
            f"| {row['label']} | {mean_and_std(row['spread']['rel_l2'])} | "
            f"{mean_and_std(row['spread']['rel_l2_fp32'])} | "
            f"{mean_and_std(row['spread']['rel_l1'])} | "
            f"{row['n_params']:,} | {_bytes(row['saved_bytes'])} | "
            f"{1000 * row['step_seconds']:.0f} ms | {speed} | {row['steps']} |"
        )
    return lines


def verdict(rows: dict[str, Any]) -> list[str]:
    """The done-when checks in words: the full pipelines (Stein against FP32-SE dense, taylor
    against FP32-AD dense; quantized inference and its weights in FP32 GEMMs), naive vs
    FP32-SE dense."""
    lines = []
    checks = (
        ("Full pipeline", PIPELINE, "FP32-SE dense", REFERENCE),
        ("Full pipeline, taylor,", TAYLOR_PIPELINE, "FP32-AD dense", AUTODIFF_REFERENCE),
    )
    for label, key, ref_label, reference in checks:
        for metric, how in (("rel_l2", "rel-L2"), ("rel_l2_fp32", "rel-L2 with FP32 inference")):
            ratio = _ratio(rows, key, reference, metric)
            if ratio is None:
                continue
            met = "met" if ratio <= PIPELINE_TARGET else "missed"
            lines.append(
                f"{label} {how} / {ref_label} rel-L2 = {ratio:.2f} (target <= "
                f"{PIPELINE_TARGET}: {met}; {_difference(rows, key, reference, metric)})."
            )
    naive = _ratio(rows, NAIVE)
    if naive is not None:
        lines.append(
            f"SMX-SE naive rel-L2 / FP32-SE dense rel-L2 = {naive:.2f} "
            f"({_difference(rows, NAIVE)})."
        )
    return lines


def plot_histories(rows: dict[str, Any], path: Path, title: str) -> None:
    """rel-L2 against step, one colour per variant and one line per seed, log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.2), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(rows.values()):
        histories = [run["history"] for run in row["seeds"].values() if run["history"]]
        for j, history in enumerate(histories):
            steps, errors = zip(*history, strict=True)
            label = row["label"] if j == 0 else None
            colour = colours[i % len(colours)]
            ax.semilogy(steps, errors, marker="o", ms=2.5, lw=1.2, color=colour, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("relative L2 error")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _title(results: dict[str, Any]) -> str:
    """The heading: the budget, its cap if any, and the seeds."""
    capped = BudgetCap(**results["cap"]).capped_at()
    seeds = results["seeds"]
    which = "each config's own seed" if seeds is None else f"seeds {', '.join(map(str, seeds))}"
    return f"# tqpinn reproduce, budget `{results['budget']}`{capped}, {which}"


def markdown(results: dict[str, Any], image_dir: str = "img") -> str:
    """The report: settings line, then per problem its budget, table, checks and plot."""
    train_total = sum(
        run["wall_seconds"] or 0.0
        for p in results["problems"].values()
        for row in p["variants"].values()
        for run in row["seeds"].values()
    )
    lines = [
        _title(results),
        "",
        f"tqpinn {results['tqpinn']}, torch {results['torch']}, {results['threads']} threads, "
        f"{results['cpu_count']} CPUs ({results['machine']}), device "
        f"{results.get('device', 'cpu')}; load average at start "
        f"{results['loadavg_start'][0]:.1f}, at end {results['loadavg_end'][0]:.1f}. "
        f"Training time summed over runs: {train_total / 60:.1f} min; this invocation: "
        f"{results['elapsed_seconds'] / 60:.1f} min.",
        "",
        "Step time: median of interleaved training steps of all variants of a problem (seconds"
        " per Adam step, forward and backward); saved for backward: bytes one training step"
        " keeps for its backward pass, at the formats' real widths (tqpinn.quant.memory)."
        " Errors: mean ± sample std over the seeds; a ratio to FP32-SE dense is called a"
        " difference only where the two variants' seed ranges (min to max) do not overlap.",
    ]
    for name, problem in results["problems"].items():
        rows = problem["variants"]
        load = problem["timing"]["loadavg_start"][0]
        lines += ["", f"## {problem['title']} (`{name}`)", "", f"{problem['budget_line']}."]
        lines += ["", *problem_table(rows), ""]
        lines += [*verdict(rows), f"Load average when timed: {load:.1f}.", ""]
        lines.append(f"![rel-L2 against step, {name}]({image_dir}/{name}_error_vs_step.png)")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out: Path) -> None:
    """Write results.json, results.md and img/<problem>_error_vs_step.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "img").mkdir(exist_ok=True)
    for name, problem in results["problems"].items():
        plot_histories(
            problem["variants"], out / "img" / f"{name}_error_vs_step.png", problem["title"]
        )
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "results.md", markdown(results))
