"""Divergence guard: an injected NaN in the loss or in a gradient is caught at its step and
handled by train.on_nonfinite (stop / skip / rollback), counted in the metrics."""

import json
import math
import sys

import pytest
import torch

from tqpinn.cli import main
from tqpinn.errors import UserError
from tqpinn.train import trainer
from tqpinn.train.checkpoint import list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict
from tqpinn.train.guard import DivergenceError, DivergenceGuard, nonfinite

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


def test_rollback_budget_stops_a_run_that_keeps_diverging(tmp_path):
    # lr = 1e25: every rollback is followed by one finite step, which resets the in-a-row
    # count, so only a budget over the whole run stops it (it used to end with exit 0).
    config = config_from_dict(tiny(60, lr=1e25, on_nonfinite="rollback", max_rollbacks=3))
    with pytest.raises(DivergenceError, match=r"3 rollbacks already = train\.max_rollbacks"):
        trainer.train(config, tmp_path, progress_bar=False)
    log = records(tmp_path)
    assert [r["action"] for r in log if "action" in r] == ["rollback"] * 3 + ["stop"]
    assert log[-1]["rollbacks"] == 3 and log[-1]["lr_scale"] == 0.5**3


def test_an_exploding_loss_stops_like_a_nonfinite_one(tmp_path):
    # lr = 10: Adam bounds each update by the rate, so the loss stays finite but leaves its
    # minimum by orders of magnitude (a healthy run stays within a few times it, see
    # docs/problems.md). It used to finish with exit 0 at rel-L2 8.
    with pytest.raises(
        DivergenceError, match=r"exploding loss \(loss .* > train.explode_factor=1000"
    ):
        trainer.train(config_from_dict(tiny(12, lr=10.0)), tmp_path, progress_bar=False)
    *good, failing = records(tmp_path)
    assert (failing["nonfinite"], failing["action"]) == ("explosion", "stop")
    assert failing["loss"] > 1000 * min(r["loss"] for r in good)
    assert not list_checkpoints(tmp_path)  # the first checkpoint (step 4) was never reached


def test_an_exploding_loss_is_rolled_back(tmp_path):
    summary = trainer.train(
        config_from_dict(tiny(12, lr=10.0, on_nonfinite="rollback", max_rollbacks=20)),
        tmp_path,
        progress_bar=False,
    )
    rolled = [r for r in records(tmp_path) if r.get("action") == "rollback"]
    assert rolled and all(r["nonfinite"] == "explosion" for r in rolled)
    assert summary["rollbacks"] == len(rolled)


def test_explode_factor_null_turns_the_check_off(tmp_path):
    summary = trainer.train(
        config_from_dict(tiny(12, lr=10.0, explode_factor=None)), tmp_path, progress_bar=False
    )
    assert summary["nonfinite_steps"] == 0


def test_a_nonfinite_first_step_is_a_user_error(tmp_path, inject):
    # Before any update the network is its initialisation: NaN there comes from the problem.
    inject("loss", {1})
    with pytest.raises(UserError, match="non-finite loss at step 1, before any update"):
        trainer.train(
            config_from_dict(tiny(6, on_nonfinite="rollback")), tmp_path, progress_bar=False
        )
    assert records(tmp_path)[-1]["step"] == 1


def test_the_running_minimum_is_checkpointed(tmp_path):
    trainer.train(config_from_dict(tiny(4)), tmp_path, progress_bar=False)
    saved = load_checkpoint(list_checkpoints(tmp_path)[-1])["guard"]
    assert saved["loss_min"] == min(r["loss"] for r in records(tmp_path))
    guard = DivergenceGuard()
    guard.load_state_dict(saved)
    assert guard.loss_min == saved["loss_min"]
