"""Crash safety: a real training process killed with SIGKILL (mid-run, halfway through writing
a checkpoint, between its fsync and its rename) resumes to the bit-identical result of an
uninterrupted run; no checkpoint is ever half-written or lost. Corrupted or incompatible
checkpoints give one clear error naming the file, and the older checkpoints stay."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tqpinn.cli import main
from tqpinn.errors import UserError
from tqpinn.train import trainer
from tqpinn.train.checkpoint import CHECKPOINT_DIR, list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict

STEPS, EVERY = 30, 3


@pytest.fixture(autouse=True)
def _one_thread():
    # As in the child runs (OMP_NUM_THREADS=1); on a shared machine also much faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONFIG = {
    "seed": 11,
    "problem": {"name": "poisson", "options": {"dim": 3}},
    "model": {"widths": [8, 8]},
    "estimator": {"name": "stein", "sigma": 0.05, "pairs": 4},
    "train": {
        "steps": STEPS,
        "log_every": 1,
        "eval_every": 10,
        "checkpoint_every": EVERY,
        "eval_points": 100,
        "points": {"interior": 8, "boundary": 8},
    },
}

# Runs in the child process: test hooks live here, never in the library. HANG=how:n makes the
# process stop (and signal the test through the file MARKER) while writing the checkpoint of
# step n, halfway through its bytes ("partial") or complete but not yet renamed
# ("unrenamed"), or in the middle of its n-th update, gradients computed ("update").
DRIVER = """
import io, os, sys, time
import torch
from tqpinn.cli import main

how, _, step = os.environ.get("HANG", "").partition(":")
marker = os.environ.get("MARKER", "")

def hang():
    open(marker, "w").close()
    time.sleep(600)

real_save, real_replace, real_step = torch.save, os.replace, torch.optim.Adam.step
updates = 0

def save(obj, f, *args, **kwargs):
    if how == "partial" and isinstance(obj, dict) and obj.get("step") == int(step):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())
        hang()
    return real_save(obj, f, *args, **kwargs)

def replace(src, dst, *args, **kwargs):
    if how == "unrenamed" and os.path.basename(dst) == f"step_{int(step):08d}.pt":
        hang()
    return real_replace(src, dst, *args, **kwargs)

def step_(self, *args, **kwargs):
    global updates
    updates += 1
    if how == "update" and updates == int(step):
        hang()
    return real_step(self, *args, **kwargs)

torch.save, os.replace, torch.optim.Adam.step = save, replace, step_
sys.argv = ["tqpinn", "train", *sys.argv[1:]]
main()
"""


def start(tmp_path: Path, args: list[str], hang: str = "") -> subprocess.Popen:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {
        **os.environ,
        "HANG": hang,
        "MARKER": str(tmp_path / "hanging"),
        "OMP_NUM_THREADS": "1",  # the same thread count in every run of the comparison
    }
    return subprocess.Popen(
        [sys.executable, str(driver), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the moment to kill")
        time.sleep(0.01)


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def logged_steps(run_dir: Path) -> int:
    return len((run_dir / "metrics.jsonl").read_text().splitlines())


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the finished checkpoints; each must load completely."""
    steps = []
    for path in list_checkpoints(run_dir):
        state = load_checkpoint(path)  # raises on a half-written file
        assert state["step"] == int(path.stem.removeprefix("step_"))
        steps.append(state["step"])
    return steps


def test_sigkill_at_any_moment_then_resume_is_bit_identical(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    run = tmp_path / "run"
    marker = tmp_path / "hanging"
    reference = start(tmp_path, ["--config", str(cfg), "--out", str(tmp_path / "full")])
    try:
        # 1. Killed halfway through writing the step-6 checkpoint.
        proc = start(tmp_path, ["--config", str(cfg), "--out", str(run)], hang="partial:6")
        wait_until(marker.exists, proc)
        kill(proc)
        marker.unlink()
        assert checkpoint_steps(run) == [3]
        assert list((run / CHECKPOINT_DIR).glob(".step_00000006.pt.*.tmp"))  # the cut write

        # 2. Resumed, killed with the step-15 checkpoint complete on disk but not renamed.
        proc = start(tmp_path, ["--resume", str(run)], hang="unrenamed:15")
        wait_until(marker.exists, proc)
        kill(proc)
        assert checkpoint_steps(run) == [9, 12]
        stale = [p.name for p in (run / CHECKPOINT_DIR).glob(".*.tmp")]
        assert len(stale) == 1 and stale[0].startswith(".step_00000015.pt"), stale

        # 3. Resumed (from step 12), killed in the middle of update 12 + 5 = 17.
        marker.unlink()
        proc = start(tmp_path, ["--resume", str(run)], hang="update:5")
        wait_until(marker.exists, proc)
        kill(proc)
        assert checkpoint_steps(run) == [12, 15]
        assert logged_steps(run) == 16

        # 4. Resumed to the end.
        proc = start(tmp_path, ["--resume", str(run)])
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        proc.stderr.close()
        assert reference.wait(timeout=300) == 0, reference.stderr.read()
        reference.stderr.close()
    finally:
        for p in (reference, proc):
            if p.poll() is None:
                p.kill()
                p.wait()

    assert checkpoint_steps(run) == [STEPS - EVERY, STEPS]
    assert not list((run / CHECKPOINT_DIR).glob(".*.tmp"))  # stale temporaries cleaned up
    final = load_checkpoint(list_checkpoints(run)[-1])
    expected = load_checkpoint(list_checkpoints(tmp_path / "full")[-1])
    for part in ("model", "optimizer", "generator"):
        assert_identical(final[part], expected[part], part)
    # The log is the uninterrupted run's, line for line: no step lost or repeated.
    assert (run / "metrics.jsonl").read_text() == (tmp_path / "full" / "metrics.jsonl").read_text()


def assert_identical(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture
def finished_run(tmp_path):
    """A short finished run with checkpoints at steps 4 and 6."""
    data = json.loads(json.dumps(CONFIG))
    data["train"].update(steps=6, checkpoint_every=2)
    cfg = config_from_dict(data)
    trainer.train(cfg, tmp_path, progress_bar=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000004.pt", "step_00000006.pt"]
    return cfg, tmp_path


def resume_error(cfg, run_dir: Path) -> str:
    before = sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir())
    with pytest.raises(UserError) as err:
        trainer.train(cfg, run_dir, resume=True, progress_bar=False)
    after = sorted(p.name for p in (run_dir / CHECKPOINT_DIR).iterdir())
    assert after == before  # nothing deleted, nothing written
    return str(err.value)


DAMAGES = {
    "truncated": lambda b: b[: len(b) // 2],
    "zeroed": lambda b: b"\x00" * len(b),
    "foreign": lambda b: b"not a checkpoint",
    "empty": lambda b: b"",
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_checkpoint_names_the_file_and_keeps_the_older_one(finished_run, damage):
    cfg, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(damage(newest.read_bytes()))
    message = resume_error(cfg, run_dir)
    assert str(newest) in message and "corrupted" in message
    assert load_checkpoint(list_checkpoints(run_dir)[0])["step"] == 4  # the older one is intact


def test_checkpoint_of_another_format_version_names_the_file(finished_run):
    cfg, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    state = load_checkpoint(newest)
    torch.save({**state, "format": "tqpinn-checkpoint-v0"}, newest)
    message = resume_error(cfg, run_dir)
    assert str(newest) in message and "'tqpinn-checkpoint-v0'" in message
    assert "'tqpinn-checkpoint-v1'" in message


def test_checkpoint_of_another_config_names_the_file_and_the_keys(finished_run):
    cfg, run_dir = finished_run
    other = config_from_dict({**cfg.to_dict(), "seed": 12})
    message = resume_error(other, run_dir)
    assert str(list_checkpoints(run_dir)[-1]) in message and "seed" in message


def test_cli_resume_of_a_damaged_run_is_one_line_exit_2(finished_run, monkeypatch, capsys):
    _, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    monkeypatch.setattr(sys, "argv", ["tqpinn", "train", "--resume", str(run_dir)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and newest.name in lines[0]
