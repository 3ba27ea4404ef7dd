"""Training runs: contract outputs, determinism, and bit-identical resume after interruption."""

import json

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
    [("autodiff", "fp32"), ("stein", "fp32"), ("stein", STOCHASTIC)],
    ids=["autodiff", "stein", "stein-stochastic-rounding"],
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


def test_resume_refuses_a_different_config(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    with pytest.raises(UserError, match=r"different config.*train\.lr"):
        trainer.train(tiny_config("autodiff", lr=0.5), tmp_path, resume=True, progress_bar=False)


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        trainer.train(tiny_config("autodiff"), tmp_path, resume=True, progress_bar=False)


def test_corrupted_checkpoint_names_the_file(tmp_path):
    trainer.train(tiny_config("autodiff"), tmp_path, progress_bar=False)
    newest = list_checkpoints(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(UserError, match=newest.name):
        trainer.train(tiny_config("autodiff"), tmp_path, resume=True, progress_bar=False)
