"""`tqpinn reproduce --seeds/--steps/--pairs`: one run per seed with mean and spread, a budget
cap stated in the report, the single-seed layout refused, bad values one line and exit 2."""

import contextlib
import io
import re
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml

from tqpinn.cli import main
from tqpinn.errors import UserError
from tqpinn.studies.reproduce import BUDGETS, PROBLEMS, BudgetCap, reproduce, variant_configs
from tqpinn.train.checkpoint import list_checkpoints
from tqpinn.train.config import load_config
from tqpinn.train.metrics import MetricsLog

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TWO_VARIANTS = ["fp32_se_dense", "full_pipeline"]
RUN_LINE = re.compile(r"(reuse|resume|train)\s+\S+/(\w+)/seed_(\d+) \(seed (\d+)\)")


def tiny_configs(directory: Path) -> Path:
    """A configs folder whose quick Poisson pipeline trains 4 steps of an 8-wide network with
    4 Stein pairs, evaluating every 2 steps."""
    directory.mkdir(parents=True, exist_ok=True)
    data = load_config(CONFIGS / "poisson2d_quick.yaml").to_dict()
    data["model"]["widths"] = [8, 8]
    data["model"]["tt"] = {**data["model"]["tt"], "ranks": 2, "shapes": [[[2, 4], [2, 4]]]}
    data["model"]["tt"]["groups"] = 1
    data["estimator"]["pairs"] = 4
    data["train"].update(steps=4, eval_every=2, checkpoint_every=2, eval_points=64)
    (directory / "poisson2d_quick.yaml").write_text(yaml.safe_dump(data))
    return directory


def run_tiny(out: Path, configs: Path, log=None, **options) -> dict:
    return reproduce(
        out,
        "quick",
        ["poisson2d"],
        options.pop("variants", TWO_VARIANTS),
        timing_rounds=1,
        log=log or (lambda _: None),
        configs_dir=configs,
        **options,
    )


def test_each_seed_is_its_own_run_and_the_row_gives_their_mean_and_spread(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    out = tmp_path / "repro"
    results = run_tiny(out, configs, seeds=[0, 1, 2])
    assert results["seeds"] == [0, 1, 2]
    for key, row in results["problems"]["poisson2d"]["variants"].items():
        assert list(row["seeds"]) == ["0", "1", "2"]
        for seed in (0, 1, 2):
            saved = yaml.safe_load(
                (out / "runs/poisson2d" / key / f"seed_{seed}/config.yaml").read_text()
            )
            assert saved["seed"] == seed
        for metric in ("rel_l2", "rel_l1", "max_abs_err"):
            values = np.array([run[metric] for run in row["seeds"].values()])
            assert len(set(values)) == 3, (key, metric)  # different seeds, different runs
            spread = row["spread"][metric]
            assert spread["n"] == 3
            assert spread["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert row[metric] == spread["mean"]
            assert spread["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
            assert (spread["min"], spread["max"]) == (values.min(), values.max())
    table = (out / "results.md").read_text()
    assert "seeds 0, 1, 2" in table.splitlines()[0]
    assert re.search(r"\| FP32-SE dense \| \d\.\d{3}e-\d\d ± \d\.\de-\d\d \(3 seeds\) \|", table)
    assert re.search(
        r"Full pipeline rel-L2 / FP32-SE dense rel-L2 = \d+\.\d\d .*means of 3 and 3 "
        r"seeds; the seed ranges (overlap: no difference called|do not overlap)",
        table,
    )

    # Run again: every run is reused (nothing trains or is rewritten), the report is the same.
    summaries = sorted(out.glob("runs/poisson2d/*/seed_*/metrics.json"))
    stamps = [p.stat().st_mtime_ns for p in summaries]
    messages: list[str] = []
    again = run_tiny(out, configs, log=messages.append, seeds=[0, 1, 2])
    runs = [m.groups() for m in map(RUN_LINE.fullmatch, map(str.strip, messages)) if m]
    assert runs == [("reuse", key, s, s) for key in TWO_VARIANTS for s in "012"]
    assert not any("timing" in m for m in messages)  # the step times are reused as well
    assert [p.stat().st_mtime_ns for p in summaries] == stamps
    assert again["problems"] == results["problems"]


def test_the_default_seed_is_the_configs_own(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    data = yaml.safe_load((configs / "poisson2d_quick.yaml").read_text())
    (configs / "poisson2d_quick.yaml").write_text(yaml.safe_dump({**data, "seed": 7}))
    results = run_tiny(tmp_path / "repro", configs, variants=["fp32_se_dense"])
    assert results["seeds"] is None
    row = results["problems"]["poisson2d"]["variants"]["fp32_se_dense"]
    assert list(row["seeds"]) == ["7"] and row["spread"]["rel_l2"]["std"] is None
    assert (tmp_path / "repro/runs/poisson2d/fp32_se_dense/seed_7/metrics.json").is_file()
    assert "(1 seed) |" in (tmp_path / "repro/results.md").read_text()


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_the_steps_cap_changes_train_steps_of_every_variant_and_nothing_else(budget, problem):
    recipe = variant_configs(budget, problem)
    capped = variant_configs(budget, problem, cap=BudgetCap(steps=7))
    for key, config in capped.items():
        assert config.train.steps == 7, key
        want = recipe[key].to_dict()
        want["train"]["steps"] = 7
        assert config.to_dict() == want, key


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_the_pairs_cap_touches_the_stein_variants_only(budget, problem):
    recipe = variant_configs(budget, problem)
    capped = variant_configs(budget, problem, cap=BudgetCap(pairs=3))
    assert any(c.estimator.name != "stein" for c in recipe.values())
    for key, config in capped.items():
        want = recipe[key].to_dict()
        if want["estimator"]["name"] == "stein":
            assert want["estimator"]["pairs"] != 3
            want["estimator"]["pairs"] = 3
        assert config.to_dict() == want, key


def test_a_capped_run_spans_its_schedule_evaluates_at_its_end_and_says_so(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    out = tmp_path / "repro"
    # 3 steps with eval_every 2: evaluated at 2 and at the last step; 1 step: only at the end.
    results = run_tiny(out, configs, cap=BudgetCap(steps=3, pairs=2))
    problem = results["problems"]["poisson2d"]
    for key, row in problem["variants"].items():
        assert row["steps"] == 3 and row["config"]["train"]["steps"] == 3
        assert [step for step, _ in row["seeds"]["0"]["history"]] == [2, 3]
        # Linear decay over the capped run: update 2 (0-based) of 3 at lr * (1 - 2/3).
        records = MetricsLog.read(out / "runs/poisson2d" / key / "seed_0/metrics.jsonl")
        lr = row["config"]["train"]["lr"]
        assert records[-1]["step"] == 3
        assert records[-1]["lr"] == pytest.approx(lr / 3, rel=1e-12)
    assert problem["variants"]["full_pipeline"]["config"]["estimator"]["pairs"] == 2
    line = "budget: quick, capped at 3 steps, 2 pairs (recipe: 4 steps, 4 pairs)"
    assert problem["budget_line"] == line and results["cap"] == {"steps": 3, "pairs": 2}
    report = (out / "results.md").read_text()
    assert report.splitlines()[0].startswith(
        "# tqpinn reproduce, budget `quick`, capped at 3 steps, 2 pairs"
    )
    assert f"{line}." in report

    one = run_tiny(tmp_path / "one", configs, variants=["fp32_se_dense"], cap=BudgetCap(steps=1))
    row = one["problems"]["poisson2d"]["variants"]["fp32_se_dense"]
    assert [step for step, _ in row["seeds"]["0"]["history"]] == [1]
    run_dir = tmp_path / "one/runs/poisson2d/fp32_se_dense/seed_0"
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_00000001.pt"]


def test_a_run_in_the_single_seed_layout_is_refused_before_anything_trains(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    out = tmp_path / "repro"
    old = out / "runs/poisson2d/full_pipeline"
    old.mkdir(parents=True)
    (old / "config.yaml").write_text(yaml.safe_dump({"seed": 5}))
    message = rf"{old} holds a run in the single-seed layout; move its contents into {old}/seed_5"
    with pytest.raises(UserError, match=re.escape(message)):
        run_tiny(out, configs, seeds=[0, 5])
    assert sorted(p.name for p in (out / "runs/poisson2d").iterdir()) == ["full_pipeline"]


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([], "no seeds given"),
        ([0, -1], r"seeds must be integers in \[0, 2\*\*63\), got \[-1\]"),
        ([1, 2, 1], r"seeds \[1\] given more than once in \[1, 2, 1\]"),
    ],
)
def test_bad_seeds_are_user_errors(tmp_path, seeds, message):
    with pytest.raises(UserError, match=message):
        reproduce(tmp_path / "o", seeds=seeds)
    assert not (tmp_path / "o").exists()


def run_cli(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``tqpinn ARGS``, in-process."""
    err = io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["tqpinn", *args]),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            main()
        except SystemExit as done:
            return int(done.code or 0), err.getvalue()
    return 0, err.getvalue()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--seeds", "0,-1", "seeds must be integers in [0, 2**63), got [-1]"),
        ("--seeds", "0,x", "--seeds takes integers, got 'x'"),
        ("--seeds", "0,1,1", "seeds [1] given more than once in [0, 1, 1]; give each once"),
        ("--steps", "0", "the steps cap (--steps) must be a positive integer, got 0"),
        ("--steps", "-5", "the steps cap (--steps) must be a positive integer, got -5"),
        ("--steps", "2.5", "--steps takes integers, got '2.5'"),
        ("--pairs", "0", "the pairs cap (--pairs) must be a positive integer, got 0"),
        ("--pairs", "many", "--pairs takes integers, got 'many'"),
    ],
)
def test_cli_bad_values_are_one_line_and_exit_code_2(tmp_path, option, value, message):
    code, stderr = run_cli(["reproduce", "--out", str(tmp_path / "o"), option, value])
    assert code == 2
    assert stderr.splitlines() == [f"error: {message}"]
    assert not (tmp_path / "o").exists()
