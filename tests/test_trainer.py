"""Training runs: contract outputs, determinism, and bit-identical resume after interruption."""

import json
import os
import re
import stat
from pathlib import Path

import pytest
import torch

from tqpinn.errors import UserError
from tqpinn.train import trainer
from tqpinn.train.checkpoint import list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict

TINY = {
    "seed": 3,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [16, 16]},
    "train": {
        "steps": 12,
        "eval_every": 6,
        "log_every": 2,
        "checkpoint_every": 4,
        "eval_points": 400,
        "points": {"interior": 16, "boundary": 16},
    },
}
ESTIMATORS = {
    "autodiff": {"name": "autodiff"},
    "stein": {"name": "stein", "sigma": 0.05, "pairs": 8},
    "stein_device": {"name": "stein", "sigma": 0.05, "pairs": 8, "directions": "device"},
}
# Stochastic rounding of every gradient: resuming must restore the rounding generator too.
STOCHASTIC = {
    "base": "smx_paper",
    "wgrad.grad_output": {"format": "smx_int12", "rounding": "stochastic"},
    "dgrad.grad_output": {"format": "smx_int12", "rounding": "stochastic"},
    "seed": 5,
}


def tiny_config(estimator: str, quant="fp32", **train):
    data = json.loads(json.dumps(TINY))
    data["estimator"] = ESTIMATORS[estimator]
    data["quant"] = quant
    data["train"].update(train)
    return config_from_dict(data)


def final_params(run_dir):
    state = load_checkpoint(list_checkpoints(run_dir)[-1])
    return state["model"]


def test_outputs_follow_the_contract(tmp_path):
    summary = trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    for key in (
        "rel_l2",
        "rel_l1",
        "max_abs_err",
        "steps",
        "wall_seconds",
        "n_params",
        "problem",
        "estimator",
        "quant",
    ):
        assert key in summary
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    assert all("loss" in r and "loss_interior" in r and "loss_boundary" in r for r in records)
    assert [r["step"] for r in records if "rel_l2" in r] == [6, 12]
    assert (tmp_path / "config.yaml").is_file()
    assert (tmp_path / "error_vs_step.png").stat().st_size > 0
    assert (tmp_path / "solution.png").stat().st_size > 0
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000008.pt", "step_00000012.pt"]
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize(
    ("estimator", "quant"),
    [("autodiff", "fp32"), ("stein", "fp32"), ("stein", STOCHASTIC), ("stein_device", "fp32")],
    ids=["autodiff", "stein", "stein-stochastic-rounding", "stein-directions-on-device"],
)
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, monkeypatch, estimator, quant):
    cfg = tiny_config(estimator, quant)
    trainer.train(cfg, tmp_path / "full", progress_bar=False)

    real_step = trainer.train_step

    def step_then_crash(run, step):
        if step == 9:  # dies during update 10: the newest checkpoint is step 8
            raise KeyboardInterrupt
        return real_step(run, step)

    monkeypatch.setattr(trainer, "train_step", step_then_crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, tmp_path / "cut", progress_bar=False)
    assert list_checkpoints(tmp_path / "cut")[-1].name == "step_00000008.pt"
    monkeypatch.setattr(trainer, "train_step", real_step)
    trainer.train(cfg, tmp_path / "cut", resume=True, progress_bar=False)

    full, cut = final_params(tmp_path / "full"), final_params(tmp_path / "cut")
    for name in full:
        assert torch.equal(full[name], cut[name]), name
    steps = [
        json.loads(r)["step"] for r in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(set(steps))  # no duplicated log lines after the resume


def test_directions_on_the_device_come_from_a_generator_of_their_own(tmp_path):
    """Same seed, same collocation points; only Stein's directions differ between the modes,
    so the very first loss differs, while two device-mode runs agree bit for bit."""

    def first_losses(estimator: str, name: str) -> list[float]:
        trainer.train(
            tiny_config(estimator, steps=2, log_every=1), tmp_path / name, progress_bar=False
        )
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(r)["loss_interior"] for r in lines]

    on_cpu = first_losses("stein", "cpu")
    on_device = first_losses("stein_device", "device")
    assert on_device == first_losses("stein_device", "device_again")
    assert on_device[0] != on_cpu[0]


def test_resume_refuses_a_different_config(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    with pytest.raises(UserError, match=r"different config.*train\.lr"):
        trainer.train(tiny_config("autodiff", lr=0.5), tmp_path, resume=True, progress_bar=False)


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        trainer.train(tiny_config("autodiff"), tmp_path, resume=True, progress_bar=False)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file under ``run_dir`` with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_corrupted_newest_checkpoint_falls_back_with_one_warning(tmp_path, capsys):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    expected = final_params(tmp_path)
    older, newest = list_checkpoints(tmp_path)
    newest.write_bytes(newest.read_bytes()[:100])
    capsys.readouterr()
    trainer.train(tiny_config("autodiff"), tmp_path, resume=True, progress_bar=False)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and str(newest) in warning[0] and str(older) in warning[0]
    for name, value in final_params(tmp_path).items():
        assert torch.equal(value, expected[name]), name


def test_a_fresh_run_refuses_a_directory_holding_a_run(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    before = snapshot(tmp_path)
    with pytest.raises(UserError) as err:
        trainer.train(tiny_config("autodiff", steps=4), tmp_path, progress_bar=False)
    message = str(err.value)
    assert str(tmp_path) in message and "--resume" in message and "--overwrite" in message
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_the_old_run_and_keeps_other_files(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    (tmp_path / "notes.txt").write_text("mine")
    trainer.train(tiny_config("autodiff", steps=4), tmp_path, progress_bar=False, overwrite=True)
    fresh = tmp_path.parent / "fresh"
    trainer.train(tiny_config("autodiff", steps=4), fresh, progress_bar=False)
    kept = snapshot(tmp_path)
    assert kept.pop("notes.txt") == b"mine"
    new = snapshot(fresh)
    assert kept.keys() == new.keys()  # nothing of the 12-step run is left
    for name in ("config.yaml", "metrics.jsonl"):
        assert kept[name] == new[name]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004.pt"]


def test_an_empty_existing_directory_is_fine(tmp_path):
    trainer.train(tiny_config("autodiff", steps=4), tmp_path, progress_bar=False)
    assert (tmp_path / "metrics.json").is_file()


def test_a_kill_between_the_last_rename_and_pruning_is_pruned_on_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "prune_checkpoints", lambda *a, **k: None)
    cfg = tiny_config("autodiff")
    trainer.train(cfg, tmp_path, progress_bar=False)
    extra = list_checkpoints(tmp_path)[0].with_name("step_00000002.pt")
    extra.write_bytes(list_checkpoints(tmp_path)[0].read_bytes())
    monkeypatch.undo()
    assert len(list_checkpoints(tmp_path)) == 3
    trainer.train(cfg, tmp_path, resume=True, progress_bar=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000008.pt", "step_00000012.pt"]


def test_a_finished_run_extends_with_the_schedule_of_its_new_total(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    cfg = tiny_config("autodiff", steps=16)
    summary = trainer.train(cfg, tmp_path, resume=True, progress_bar=False)
    assert summary["steps"] == 16
    records = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12, 13, 14, 16]
    first = records[6]
    assert first["steps_before"] == 12
    # Update 12 (0-based) of a 16-step linear schedule: lr (1 - 12/16).
    assert first["lr"] == pytest.approx(cfg.train.lr * (1 - 12 / 16), rel=1e-12)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000012.pt", "step_00000016.pt"]


def test_a_total_below_the_checkpoint_step_is_refused(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    with pytest.raises(UserError, match=r"step 12, past train\.steps=10.*N >= 12"):
        trainer.train(tiny_config("autodiff", steps=10), tmp_path, resume=True, progress_bar=False)


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        trainer.train(tiny_config("autodiff", steps=4), tmp_path, progress_bar=False)
    finally:
        os.umask(old)
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "solution.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE(list_checkpoints(tmp_path)[0].stat().st_mode) == 0o644


def test_progress_lines_name_the_step_of_the_last_evaluation(tmp_path, capsys):
    trainer.train(tiny_config("autodiff", eval_every=4, log_every=1), tmp_path, progress_bar=False)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"step 5/12 loss \S+ rel_l2 \S+ @ step 4 \(\d+\.\d s\)", lines[4]), lines[4]
