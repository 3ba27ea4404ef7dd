"""Per problem and budget: the config file of the paper's full pipeline, from which every variant
of the ablation is made (:mod:`tqpinn.studies.reproduce.variants` turns its ingredients off).

"paper": ``configs/<problem>_smx_se_tt.yaml``, the full pipeline on the prior recipes of
PAPER_NOTES.md section 7; turning every ingredient off gives back ``<problem>_fp32_se.yaml`` and
``<problem>_fp32_ad.yaml``, which it extends. "quick": ``configs/<problem>_quick.yaml``, the same
pipeline made smaller (a few lines of changes on the paper file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqpinn.errors import UserError
from tqpinn.studies.reproduce.cap import NO_CAP, BudgetCap
from tqpinn.studies.reproduce.variants import VARIANTS, Variant
from tqpinn.train.config import Config, config_from_dict, load_config

CONFIGS_DIR = Path(__file__).resolve().parents[4] / "configs"
"""The repository's configs/ folder (the package runs from its source tree)."""

TITLES = {"poisson2d": "Poisson 2-D", "hjb20d": "HJB 20-D", "heat100d": "Heat 100-D"}
"""Problem key -> what the report calls it; the keys name the config files."""

PIPELINE_FILES = {"paper": "{problem}_smx_se_tt.yaml", "quick": "{problem}_quick.yaml"}
"""Budget -> the full pipeline's config file of a problem."""

BUDGETS = tuple(PIPELINE_FILES)
PROBLEMS = tuple(TITLES)


def pipeline_file(budget: str, problem: str, configs_dir: Path = CONFIGS_DIR) -> Path:
    """The full pipeline's config file of ``problem`` at ``budget``; unknown names raise
    UserError."""
    if budget not in PIPELINE_FILES:
        raise UserError(f"unknown budget {budget!r}; choose from {list(BUDGETS)}")
    if problem not in TITLES:
        raise UserError(f"unknown problem {problem!r}; choose from {list(PROBLEMS)}")
    return configs_dir / PIPELINE_FILES[budget].format(problem=problem)


def recipe_numbers(
    budget: str, problem: str, configs_dir: Path = CONFIGS_DIR
) -> dict[str, int | None]:
    """The full pipeline's own budget: ``steps``, and Stein's ``pairs`` (None without Stein)."""
    pipeline = load_config(pipeline_file(budget, problem, configs_dir))
    pairs = pipeline.estimator.pairs if pipeline.estimator.name == "stein" else None
    return {"steps": pipeline.train.steps, "pairs": pairs}


def variant_configs(
    budget: str,
    problem: str,
    variants: Sequence[Variant] = VARIANTS,
    configs_dir: Path = CONFIGS_DIR,
    cap: BudgetCap = NO_CAP,
) -> dict[str, Config]:
    """Variant key -> its config, each made from the problem's full-pipeline file, with the
    budget ``cap`` in place (:mod:`tqpinn.studies.reproduce.cap`)."""
    pipeline = load_config(pipeline_file(budget, problem, configs_dir)).to_dict()
    return {v.key: config_from_dict(cap.apply(v.config(pipeline))) for v in variants}
