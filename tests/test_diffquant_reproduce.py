"""`tqpinn reproduce`: variants as configs, resumable runs, report files, CLI errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tqpinn.errors import UserError
from tqpinn.studies.reproduce import BUDGETS, PROBLEMS, VARIANTS, reproduce, variant_configs
from tqpinn.studies.reproduce.runner import train_or_reuse
from tqpinn.train.checkpoint import list_checkpoints
from tqpinn.train.config import config_from_dict, load_config
from tqpinn.train.run import build_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY_VARIANTS = [
    "fp32_se_dense",
    "smx_se_naive",
    "full_pipeline",
    "full_pipeline_taylor",
    "full_pipeline_stencil",
]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_every_variant_of_every_recipe_is_a_valid_config(budget, problem):
    configs = variant_configs(budget, problem)
    ref = configs["fp32_se_dense"]
    pipeline_tt = configs["full_pipeline"].model.tt
    for v in VARIANTS:
        c = configs[v.key]
        # One budget per problem: every variant trains the same problem, steps and points.
        assert (c.problem, c.train, c.model.widths) == (ref.problem, ref.train, ref.model.widths)
        assert c.quant == v.quant
        # The variant's estimator section, and for Stein the pipeline's sigma and pairs.
        assert v.estimator.items() <= c.estimator.model_dump().items()
        if c.estimator.name == "stein":
            assert (c.estimator.sigma, c.estimator.pairs) == (0.01, ref.estimator.pairs)
        assert (c.model.tt is None) == (v.tt_plan is None)
        if c.model.tt is not None:
            assert c.model.tt.plan == v.tt_plan
            assert (c.model.tt.layers, c.model.tt.ranks) == (pipeline_tt.layers, pipeline_tt.ranks)
            assert c.model.tt.groups == (pipeline_tt.groups if v.tt_plan == "partial" else None)
    assert pipeline_tt.plan == "partial"


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_every_variant_of_every_recipe_builds_a_run(budget, problem):
    for key, config in variant_configs(budget, problem).items():
        data = config.to_dict()
        data["train"]["eval_points"] = 8  # the test set is not what is checked here
        run = build_run(config_from_dict(data))
        assert run.n_params > 0, key
        assert run.setup.estimator.name == config.estimator.name, key


NEW_ESTIMATOR_ROWS = {
    "full_pipeline_taylor": {"name": "taylor"},
    "full_pipeline_stencil": {"name": "stencil", "h": 0.01, "diffquant": "full"},
}


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_estimator_rows_change_only_the_full_pipelines_estimator(budget, problem):
    configs = variant_configs(budget, problem)
    pipeline = configs["full_pipeline"].to_dict()
    for key, estimator in NEW_ESTIMATOR_ROWS.items():
        row = configs[key].to_dict()
        assert row["estimator"] == estimator
        assert {**row, "estimator": None} == {**pipeline, "estimator": None}


def tiny_configs(directory: Path) -> Path:
    """A configs folder whose quick Poisson pipeline is tiny (4 steps of an 8-wide network)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = load_config(CONFIGS / "poisson2d_quick.yaml").to_dict()
    data["model"]["widths"] = [8, 8]
    tt = {**data["model"]["tt"], "ranks": 2, "shapes": [[[2, 4], [2, 4]]], "groups": 1}
    data["model"]["tt"] = tt
    data["estimator"]["pairs"] = 4
    data["train"].update(steps=4, eval_every=2, checkpoint_every=2, eval_points=64)
    (directory / "poisson2d_quick.yaml").write_text(yaml.safe_dump(data))
    return directory


RUN_LINE = re.compile(r"(reuse|resume|train)\s+\S+/(\w+)/seed_\d+ \(seed (\d+)\)")
"""A progress line of one run: action, variant, seed."""


def test_reproduce_writes_the_report_and_resumes_an_interrupted_run(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    out = tmp_path / "repro"
    first = reproduce(
        out, "quick", ["poisson2d"], TINY_VARIANTS, timing_rounds=1, log=print, configs_dir=configs
    )
    rows = first["problems"]["poisson2d"]["variants"]
    assert list(rows) == TINY_VARIANTS
    for row in rows.values():
        assert row["steps"] == 4 and row["n_params"] > 0 and row["saved_bytes"] > 0
        assert list(row["seeds"]) == ["0"]  # the config's own seed, one run
        assert [step for step, _ in row["seeds"]["0"]["history"]] == [2, 4]
        assert row["step_seconds"] > 0
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(first))
    table = (out / "results.md").read_text()
    assert all(f"| {row['label']} |" in table for row in rows.values())
    assert (out / "img" / "poisson2d_error_vs_step.png").stat().st_size > 0

    # Interrupt the full pipeline after step 2: no summary, only the step-2 checkpoint.
    run_dir = out / "runs" / "poisson2d" / "full_pipeline" / "seed_0"
    (run_dir / "metrics.json").unlink()
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_00000002.pt", "step_00000004.pt"]
    list_checkpoints(run_dir)[-1].unlink()
    messages = []
    second = reproduce(
        out,
        "quick",
        ["poisson2d"],
        TINY_VARIANTS,
        timing_rounds=1,
        log=messages.append,
        configs_dir=configs,
    )
    runs = [RUN_LINE.fullmatch(m.strip()) for m in messages]
    assert [r.groups() for r in runs if r] == [
        ("reuse", "fp32_se_dense", "0"),
        ("reuse", "smx_se_naive", "0"),
        ("resume", "full_pipeline", "0"),
        ("reuse", "full_pipeline_taylor", "0"),
        ("reuse", "full_pipeline_stencil", "0"),
    ]
    again = second["problems"]["poisson2d"]["variants"]
    # The trainer's resume is bit-identical: same final errors as the uninterrupted run.
    for key in TINY_VARIANTS:
        assert again[key]["rel_l2"] == rows[key]["rel_l2"]
        assert again[key]["seeds"]["0"]["history"] == rows[key]["seeds"]["0"]["history"]


def test_a_run_directory_of_another_config_is_not_overwritten(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    config = variant_configs("quick", "poisson2d", VARIANTS[1:2], configs)[VARIANTS[1].key]
    train_or_reuse(config, tmp_path / "run", log=lambda m: None)
    other = config_from_dict({**config.to_dict(), "seed": 1})
    with pytest.raises(UserError, match="different config"):
        train_or_reuse(other, tmp_path / "run", log=lambda m: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": "huge"}, r"unknown budget \['huge'\]; choose from \['paper', 'quick'\]"),
        ({"problems": ["poisson2d", "wave"]}, r"unknown problems \['wave'\]; choose from"),
        ({"variants": ["fp32_se_dense", "int4"]}, r"unknown variants \['int4'\]; choose from"),
    ],
)
def test_unknown_names_are_user_errors_listing_the_choices(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        reproduce(tmp_path / "o", **options)
    assert not (tmp_path / "o").exists()


def test_cli_user_error_is_one_line_and_exit_code_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tqpinn", "reproduce", "--out", str(tmp_path), "--budget", "x"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown budget ['x']" in lines[0], result.stderr


PAPER_FILES = {
    "fp32_ad_dense": "{problem}_fp32_ad.yaml",
    "fp32_se_dense": "{problem}_fp32_se.yaml",
    "full_pipeline": "{problem}_smx_se_tt.yaml",
}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_paper_variants_are_the_committed_recipes(problem):
    # Turning the pipeline's ingredients off gives back the prior recipes it extends.
    configs = variant_configs("paper", problem)
    for key, name in PAPER_FILES.items():
        assert configs[key] == load_config(CONFIGS / name.format(problem=problem)), key


def test_make_run_trains_the_quick_poisson_full_pipeline():
    committed = load_config(CONFIGS / "default.yaml")
    assert variant_configs("quick", "poisson2d")["full_pipeline"] == committed


@pytest.mark.parametrize("problem", PROBLEMS)
def test_quick_budget_changes_only_sizes(problem):
    quick = variant_configs("quick", problem)["full_pipeline"]
    paper = variant_configs("paper", problem)["full_pipeline"]
    assert (quick.problem, quick.quant, quick.estimator.sigma, quick.estimator.diffquant) == (
        paper.problem,
        paper.quant,
        paper.estimator.sigma,
        paper.estimator.diffquant,
    )
    assert quick.train.steps < paper.train.steps
    assert quick.estimator.pairs < paper.estimator.pairs
