"""`tqpinn reproduce`: variants as configs, resumable runs, report files, CLI errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tqpinn.errors import UserError
from tqpinn.studies.reproduce import BUDGETS, PROBLEMS, RECIPES, VARIANTS, Recipe, reproduce
from tqpinn.studies.reproduce.runner import train_or_reuse
from tqpinn.train.checkpoint import list_checkpoints
from tqpinn.train.config import config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY_VARIANTS = ["fp32_se_dense", "smx_se_naive", "full_pipeline"]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_every_variant_of_every_recipe_is_a_valid_config(budget, problem):
    rec = RECIPES[budget][problem]
    configs = {v.key: config_from_dict(v.config(rec.base, rec.tt)) for v in VARIANTS}
    ref = configs["fp32_se_dense"]
    for v in VARIANTS:
        c = configs[v.key]
        # One budget per problem: every variant trains the same problem, steps and points.
        assert (c.problem, c.train, c.model.widths) == (ref.problem, ref.train, ref.model.widths)
        assert c.quant == v.quant
        assert c.estimator.name == v.estimator
        if v.estimator == "stein":
            assert (c.estimator.sigma, c.estimator.pairs) == (0.01, ref.estimator.pairs)
            assert c.estimator.diffquant == v.diffquant
        assert (c.model.tt is None) == (v.tt_plan is None)
        if c.model.tt is not None:
            assert c.model.tt.plan == v.tt_plan
            assert c.model.tt.layers == rec.tt["layers"]
    assert configs["full_pipeline"].model.tt.groups == rec.tt["groups"]


def tiny_recipe() -> Recipe:
    base = RECIPES["quick"]["poisson2d"].base
    train = {**base["train"], "steps": 4, "eval_every": 2, "checkpoint_every": 2}
    return Recipe(
        "tiny Poisson",
        {
            **base,
            "model": {"widths": [8, 8], "activation": "tanh"},
            "estimator": {**base["estimator"], "pairs": 4},
            "train": {**train, "eval_points": 64},
        },
        {"layers": [1], "ranks": 2, "shapes": [[[2, 4], [2, 4]]], "groups": 1},
    )


def test_reproduce_writes_the_report_and_resumes_an_interrupted_run(tmp_path, monkeypatch):
    monkeypatch.setitem(RECIPES["quick"], "poisson2d", tiny_recipe())
    out = tmp_path / "repro"
    first = reproduce(out, "quick", ["poisson2d"], TINY_VARIANTS, timing_rounds=1, log=print)
    rows = first["problems"]["poisson2d"]["variants"]
    assert list(rows) == TINY_VARIANTS
    for row in rows.values():
        assert row["steps"] == 4 and row["n_params"] > 0 and row["saved_bytes"] > 0
        assert [step for step, _ in row["history"]] == [2, 4]
        assert row["step_seconds"] > 0
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(first))
    table = (out / "results.md").read_text()
    assert all(f"| {row['label']} |" in table for row in rows.values())
    assert (out / "img" / "poisson2d_error_vs_step.png").stat().st_size > 0

    # Interrupt the full pipeline after step 2: no summary, only the step-2 checkpoint.
    run_dir = out / "runs" / "poisson2d" / "full_pipeline"
    (run_dir / "metrics.json").unlink()
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_00000002.pt", "step_00000004.pt"]
    list_checkpoints(run_dir)[-1].unlink()
    messages = []
    second = reproduce(
        out, "quick", ["poisson2d"], TINY_VARIANTS, timing_rounds=1, log=messages.append
    )
    runs = [m.split() for m in messages if m.lstrip().startswith(("reuse", "resume", "train"))]
    assert [(action, path.split("/")[-1]) for action, path in runs] == [
        ("reuse", "fp32_se_dense"),
        ("reuse", "smx_se_naive"),
        ("resume", "full_pipeline"),
    ]
    again = second["problems"]["poisson2d"]["variants"]
    # The trainer's resume is bit-identical: same final errors as the uninterrupted run.
    for key in TINY_VARIANTS:
        assert again[key]["rel_l2"] == rows[key]["rel_l2"]
        assert again[key]["history"] == rows[key]["history"]


def test_a_run_directory_of_another_config_is_not_overwritten(tmp_path, monkeypatch):
    rec = tiny_recipe()
    variant = VARIANTS[1]
    config = config_from_dict(variant.config(rec.base, rec.tt))
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


@pytest.mark.parametrize("problem", PROBLEMS)
def test_paper_full_pipeline_is_the_committed_config(problem):
    # configs/<problem>_smx_se_tt.yaml is what the paper budget trains as its full pipeline.
    rec = RECIPES["paper"][problem]
    full = next(v for v in VARIANTS if v.key == "full_pipeline")
    committed = load_config(CONFIGS / f"{problem}_smx_se_tt.yaml")
    assert config_from_dict(full.config(rec.base, rec.tt)) == committed


def test_make_run_trains_the_quick_poisson_full_pipeline():
    rec = RECIPES["quick"]["poisson2d"]
    full = next(v for v in VARIANTS if v.key == "full_pipeline")
    committed = load_config(CONFIGS / "default.yaml")
    assert config_from_dict(full.config(rec.base, rec.tt)) == committed
