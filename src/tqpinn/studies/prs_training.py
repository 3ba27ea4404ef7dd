"""The PRS experiment at training level: the paper's problems trained with each contraction plan.

Poisson-2D and HJB-20D (their smx_se_tt configs) are trained with the sequential, PRS (two
groups) and reconstruct plans under smx_paper, and the sequential plan in FP32 as the reference,
on a reduced budget (``steps``, ``pairs``) that the results record in their overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqpinn.train.config import load_config
from tqpinn.train.trainer import train

TRAIN_PLANS: dict[str, list[str]] = {  # label -> overrides of model.tt
    "sequential": ["model.tt.plan=sequential", "model.tt.groups=null"],
    "PRS (2 groups)": ["model.tt.plan=partial", "model.tt.groups=2"],
    "reconstruct": ["model.tt.plan=reconstruct", "model.tt.groups=null"],
}
FP32_REFERENCE = "sequential (fp32)"
TRAIN_PROBLEMS: dict[str, str] = {
    "poisson2d": "poisson2d_smx_se_tt.yaml",
    "hjb20d": "hjb20d_smx_se_tt.yaml",
}
SUMMARY_KEYS = ("rel_l2", "rel_l1", "wall_seconds", "n_params")


def plan_runs(budget: Sequence[str]) -> dict[str, list[str]]:
    """Overrides of every run of one problem: each plan, and the FP32 sequential reference."""
    runs = {label: [*budget, *over] for label, over in TRAIN_PLANS.items()}
    runs[FP32_REFERENCE] = [*budget, *TRAIN_PLANS["sequential"], "quant=fp32"]
    return runs


def run_dir_name(problem: str, label: str) -> str:
    """``<problem>_<first word of the plan>``, with ``_fp32`` for the FP32 reference."""
    name = f"{problem}_{label.split()[0].lower()}"
    return name + "_fp32" if label == FP32_REFERENCE else name


def train_plans(
    configs: Path,
    out_root: Path,
    steps: int = 200,
    pairs: int = 32,
    problems: Mapping[str, str] = TRAIN_PROBLEMS,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict[str, Any]]:
    """Train every plan of every problem (config files under ``configs``) for ``steps`` steps
    with ``pairs`` Stein pairs, each run in its own folder under ``out_root``; one row per run
    with its final rel-L2, rel-L1, wall time and parameter count."""
    budget = [
        f"train.steps={steps}",
        f"estimator.pairs={pairs}",
        f"train.eval_every={steps}",
        f"train.checkpoint_every={steps}",
    ]
    results = []
    for problem, config_name in problems.items():
        for label, overrides in plan_runs(budget).items():
            config = load_config(configs / config_name, overrides)
            summary = train(config, out_root / run_dir_name(problem, label))
            results.append(
                {
                    "problem": problem,
                    "plan": label,
                    "config": config_name,
                    "overrides": overrides,
                    "model_tt": config.model.tt.model_dump(mode="json"),
                    **{k: summary[k] for k in SUMMARY_KEYS},
                }
            )
            log(f"train {problem} {label}: rel_l2 {summary['rel_l2']:.3e}")
    return results
