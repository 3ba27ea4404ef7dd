"""The PRS experiment: what each TT contraction plan costs in accuracy under smx_paper.

Part 1 (layer level): for TT layers of the paper's problems, the relative error vs FP32 of the
output, the input gradient and the core gradients, for every plan and grouping, with merges in
FP32 (each merged core quantized once) and quantized. Part 2 (training): Poisson-2D and HJB-20D
trained with each plan under smx_paper (reduced budget, stated in the JSON). Writes JSON and a
plot:

    python benchmarks/prs_experiment.py [--out benchmarks/results/prs.json] \\
        --plot docs/tt_prs.png [--seeds 3] [--rows 4096] [--steps 200] [--pairs 32] [--no-train]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from common import parser, write_result
from tqpinn.machine import load_average
from tqpinn.quant.spec import make_preset
from tqpinn.report.pyplot import pyplot
from tqpinn.studies.prs import PAPER_CASES, layer_errors
from tqpinn.train.config import load_config
from tqpinn.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PLANS = {  # label -> overrides of model.tt
    "sequential": ["model.tt.plan=sequential", "model.tt.groups=null"],
    "PRS (2 groups)": ["model.tt.plan=partial", "model.tt.groups=2"],
    "reconstruct": ["model.tt.plan=reconstruct", "model.tt.groups=null"],
}
TRAIN_PROBLEMS = {"poisson2d": "poisson2d_smx_se_tt.yaml", "hjb20d": "hjb20d_smx_se_tt.yaml"}


def layer_part(seeds: int, rows: int) -> list[dict[str, Any]]:
    spec = make_preset("smx_paper")
    rows_out = []
    for merge in ("fp32", "quantized"):
        for case in PAPER_CASES:
            for r in layer_errors(case, spec, rows=rows, seeds=seeds, merge=merge):
                rows_out.append({"merge": merge, **r})
            print(f"layer errors: {case.name}, merge {merge}", flush=True)
    return rows_out


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (merge, case, plan)."""
    keys = ("rel_err_output", "rel_err_grad_input", "rel_err_grad_cores")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["merge"], r["case"], r["plan"], r["data_path_depth"]), []).append(r)
    out = []
    for (merge, case, plan, depth), rs in groups.items():
        entry = {"merge": merge, "case": case, "plan": plan, "data_path_depth": depth}
        for k in keys:
            vals = [r[k] for r in rs]
            entry[k] = statistics.mean(vals)
            entry[k + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(entry)
    return out


def train_part(steps: int, pairs: int, out_root: Path) -> list[dict[str, Any]]:
    results = []
    budget = [
        f"train.steps={steps}",
        f"estimator.pairs={pairs}",
        f"train.eval_every={steps}",
        f"train.checkpoint_every={steps}",
    ]
    for problem, config_name in TRAIN_PROBLEMS.items():
        runs = {label: [*budget, *over] for label, over in TRAIN_PLANS.items()}
        runs["sequential (fp32)"] = [*budget, *TRAIN_PLANS["sequential"], "quant=fp32"]
        for label, overrides in runs.items():
            config = load_config(ROOT / "configs" / config_name, overrides)
            out_dir = out_root / f"{problem}_{label.split()[0].lower()}"
            if label.endswith("(fp32)"):
                out_dir = out_dir.with_name(out_dir.name + "_fp32")
            summary = train(config, out_dir)
            results.append(
                {
                    "problem": problem,
                    "plan": label,
                    "config": config_name,
                    "overrides": overrides,
                    "model_tt": config.model.tt.model_dump(mode="json"),
                    **{k: summary[k] for k in ("rel_l2", "rel_l1", "wall_seconds", "n_params")},
                }
            )
            print(f"train {problem} {label}: rel_l2 {summary['rel_l2']:.3e}", flush=True)
    return results


def plot(summary: list[dict[str, Any]], training: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    case = "hjb20d_hidden"
    panels = 2 if training else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    for merge, marker in (("fp32", "o"), ("quantized", "x")):
        rows = [r for r in summary if r["case"] == case and r["merge"] == merge]
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
    ax.set_title(f"{case} (512x512, rank 2) under smx_paper")
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
        ax.set_title("training per plan (smx_paper unless marked)")
        ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = parser(__doc__, "prs.json")
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "prs")
    p.add_argument("--no-train", action="store_true")
    args = p.parse_args()
    torch.set_float32_matmul_precision("highest")
    start, load_before = time.perf_counter(), load_average()
    layers = layer_part(args.seeds, args.rows)
    summary = summarize(layers)
    training = [] if args.no_train else train_part(args.steps, args.pairs, args.runs)
    result = {
        "experiment": "prs",
        "quant": "smx_paper",
        "settings": vars(args) | {"out": str(args.out), "plot": str(args.plot), "runs": None},
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "wall_seconds": time.perf_counter() - start,
        "layer_summary": summary,
        "layer_runs": layers,
        "training": training,
    }
    write_result(args.out, result)
    print(f"{len(summary)} layer cases x plans, {len(training)} training runs")
    if args.plot is not None:
        plot(summary, training, args.plot)


if __name__ == "__main__":
    main()
