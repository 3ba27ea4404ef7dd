"""The command line: user errors are one line on stderr and exit code 2, never a traceback."""

import json

import pytest

from cli_process import run_tqpinn


def tqpinn(*args, cwd=None):
    return run_tqpinn(*args, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--config", "no/such.yaml"], "config file not found: no/such.yaml"),
        (["--set", "train.stpes=3"], "unknown config key 'train.stpes'"),
        (["--set", "estimator.name=stein", "--set", "estimator.sigma=-1"], "'estimator.sigma'"),
        (["--problem", "nonexistent"], "nonexistent"),
        (["--set", "train.weights.boundary=-2"], "'train.weights.boundary'"),
        (["--set", "train.points.corner=5"], "no condition 'corner'"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, fragment):
    result = tqpinn("train", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_train_then_eval(tmp_path):
    run = tmp_path / "run"
    sets = [
        "model.widths=[8]",
        "train.steps=4",
        "train.eval_every=2",
        "train.eval_points=100",
        "train.checkpoint_every=2",
    ]
    result = tqpinn("train", "--out", str(run), *[arg for s in sets for arg in ("--set", s)])
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "metrics.json").read_text())
    result = tqpinn("eval", str(run))
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((run / "eval.json").read_text())
    assert evaluated["step"] == 4
    assert evaluated["rel_l2"] == pytest.approx(summary["rel_l2"], rel=1e-6)


def test_eval_of_missing_dir_is_a_user_error(tmp_path):
    result = tqpinn("eval", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "run directory not found" in result.stderr
