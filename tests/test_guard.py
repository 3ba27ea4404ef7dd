"""Divergence guard: an injected NaN in the loss or in a gradient is caught at its step and
handled by train.on_nonfinite (stop / skip / rollback), counted in the metrics."""

import json
import math
import sys

import pytest
import torch

from tqpinn.cli import main
from tqpinn.train import trainer
from tqpinn.train.checkpoint import list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict
from tqpinn.train.guard import DivergenceError, nonfinite

LR = 1e-3


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: one thread is fastest, and on a shared machine spinning OpenMP threads
    # slow every step down several times.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(steps: int, **train) -> dict:
    return {
        "seed": 5,
        "problem": {"name": "poisson", "options": {"dim": 3}},  # 3-D: no solution plot to draw
        "model": {"widths": [8, 8]},
        "estimator": {"name": "stein", "sigma": 0.05, "pairs": 4},
        "train": {
            "steps": steps,
            "lr": LR,
            "schedule": "constant",  # runs of different lengths share their first updates
            "log_every": 1,
            "eval_every": 100,
            "checkpoint_every": 4,
            "eval_points": 100,
            "points": {"interior": 8, "boundary": 8},
            **train,
        },
    }


@pytest.fixture
def inject(monkeypatch):
    """inject(kind, steps): make the loss ("loss") or one gradient ("gradient") NaN at those
    1-based steps, by wrapping the trainer's step."""

    def arm(kind: str, steps: set[int]) -> None:
        real_step, real_loss, real_sum = (
            trainer.train_step,
            trainer.shard_loss,
            trainer.sum_over_ranks,
        )
        current = {"step": 0}

        def step(run, index):
            current["step"] = index + 1
            return real_step(run, index)

        def loss(*args):
            total, terms = real_loss(*args)
            if kind == "loss" and current["step"] in steps:
                total = total * math.nan
            return total, terms

        def summed(shard, values, params):
            params = list(params)
            out = real_sum(shard, values, params)
            if kind == "gradient" and current["step"] in steps:
                params[0].grad[0, 0] = math.nan
            return out

        monkeypatch.setattr(trainer, "train_step", step)
        monkeypatch.setattr(trainer, "shard_loss", loss)
        monkeypatch.setattr(trainer, "sum_over_ranks", summed)

    return arm


def params_at(run_dir, step: int) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / f"step_{step:08d}.pt")["model"]


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


def test_nonfinite_names_what_is_bad():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    assert nonfinite(torch.tensor([1.0, 2.0]), [p]) is None
    assert nonfinite(torch.tensor([1.0, math.nan]), [p]) == "loss"
    p.grad[1] = math.inf
    assert nonfinite(torch.tensor([1.0, 2.0]), [p]) == "gradient"


def test_stop_keeps_the_last_good_checkpoint(tmp_path, inject):
    inject("loss", {7})
    with pytest.raises(DivergenceError, match=r"non-finite loss at step 7.*step_00000004\.pt"):
        trainer.train(config_from_dict(tiny(12)), tmp_path, progress_bar=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004.pt"]
    *good, failing = records(tmp_path)
    assert all(math.isfinite(r["loss"]) for r in good) and len(good) == 6
    assert (failing["step"], failing["nonfinite"], failing["action"]) == (7, "loss", "stop")
    assert math.isnan(failing["loss"])


def test_stop_through_the_cli_is_one_line_and_exit_1(tmp_path, inject, monkeypatch, capsys):
    inject("gradient", {3})
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny(6)))
    monkeypatch.setattr(sys, "argv", ["tqpinn", "train", "--config", str(cfg), "--out", "r"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite gradient at step 3" in err[0], err
    assert "no checkpoint had been written yet" in err[0]


def test_skip_drops_exactly_the_bad_update(tmp_path, inject):
    # A clean 5-step run's step-4 parameters are what the skipping run has after step 5.
    trainer.train(config_from_dict(tiny(5)), tmp_path / "clean", progress_bar=False)
    inject("loss", {5})
    summary = trainer.train(
        config_from_dict(tiny(5, on_nonfinite="skip")), tmp_path / "skip", progress_bar=False
    )
    assert_same(params_at(tmp_path / "skip", 5), params_at(tmp_path / "clean", 4))
    assert summary["nonfinite_steps"] == 1 and summary["rollbacks"] == 0
    bad = records(tmp_path / "skip")[4]
    assert (bad["step"], bad["nonfinite"], bad["action"]) == (5, "loss", "skip")
    adam = load_checkpoint(list_checkpoints(tmp_path / "skip")[-1])["optimizer"]["state"]
    assert all(int(s["step"]) == 4 for s in adam.values())  # 4 updates in 5 steps


def test_rollback_restores_the_checkpoint_and_lowers_the_rate(tmp_path, inject):
    inject("gradient", {6})
    summary = trainer.train(
        config_from_dict(tiny(8, on_nonfinite="rollback", rollback_lr_factor=0.25)),
        tmp_path,
        progress_bar=False,
    )
    assert summary["rollbacks"] == 1 and summary["lr_scale"] == 0.25
    log = records(tmp_path)
    assert (log[5]["nonfinite"], log[5]["action"]) == ("gradient", "rollback")
    assert [r["lr"] for r in log] == [LR] * 6 + [0.25 * LR] * 2
    # Step 6 restored step 4's state: step 7 starts from the step-4 parameters, and the
    # optimizer has made 4 + 2 updates by step 8.
    adam = load_checkpoint(tmp_path / "checkpoints" / "step_00000008.pt")["optimizer"]["state"]
    assert all(int(s["step"]) == 6 for s in adam.values())


def test_rollback_target_is_the_checkpoint(tmp_path, inject):
    inject("loss", {6})
    trainer.train(
        config_from_dict(tiny(6, on_nonfinite="rollback", checkpoint_every=4)),
        tmp_path,
        progress_bar=False,
    )
    # The run ends at step 6 right after rolling back: its final state is step 4's.
    assert_same(params_at(tmp_path, 6), params_at(tmp_path, 4))


def test_patience_stops_a_run_that_never_recovers(tmp_path, inject):
    inject("loss", set(range(3, 20)))
    with pytest.raises(DivergenceError, match="4 diverged steps in a row") as stopped:
        trainer.train(
            config_from_dict(tiny(12, on_nonfinite="skip", nonfinite_patience=3)),
            tmp_path,
            progress_bar=False,
        )
    # Giving up under 'skip' suggests the other policy, not the one that just gave up.
    assert "'rollback'" in str(stopped.value) and "'skip'" not in str(stopped.value)


def test_resume_after_a_rollback_is_bit_identical(tmp_path, inject, monkeypatch):
    cfg = config_from_dict(tiny(12, on_nonfinite="rollback"))
    inject("gradient", {6})
    trainer.train(cfg, tmp_path / "full", progress_bar=False)
    armed_step = trainer.train_step

    def crash(run, index):
        if index == 9:  # dies in update 10: the newest checkpoint (step 8) holds lr_scale 0.5
            raise KeyboardInterrupt
        return armed_step(run, index)

    monkeypatch.setattr(trainer, "train_step", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, tmp_path / "cut", progress_bar=False)
    monkeypatch.setattr(trainer, "train_step", armed_step)
    summary = trainer.train(cfg, tmp_path / "cut", resume=True, progress_bar=False)
    assert summary["rollbacks"] == 1 and summary["lr_scale"] == 0.5
    assert_same(params_at(tmp_path / "cut", 12), params_at(tmp_path / "full", 12))
