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

from cli_process import run_tqpinn
from tqpinn.cli import main
from tqpinn.errors import UserError
from tqpinn.train import trainer
from tqpinn.train.checkpoint import CHECKPOINT_DIR, CHECKSUM, list_checkpoints, load_checkpoint
from tqpinn.train.config import config_from_dict
from tqpinn.train.digest import state_digest
from tqpinn.train.lock import LOCK_FILE

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
# step n, halfway through its bytes ("partial"), complete but not yet renamed ("unrenamed") or
# renamed but older ones not yet pruned ("renamed"), or in the middle of its n-th update,
# gradients computed ("update").
DRIVER = """
import os, sys, time
import torch
from tqpinn.cli import main

how, _, step = os.environ.get("HANG", "").partition(":")
marker = os.environ.get("MARKER", "")

def hang():
    open(marker, "w").close()
    time.sleep(600)

real_write, real_replace, real_step = os.write, os.replace, torch.optim.Adam.step
updates = 0

def write(fd, data):
    target = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    if how == "partial" and target.startswith(f".step_{int(step):08d}.pt."):
        real_write(fd, bytes(data[: len(data) // 2]))
        os.fsync(fd)
        hang()
    return real_write(fd, data)

def replace(src, dst, *args, **kwargs):
    if how == "unrenamed" and os.path.basename(dst) == f"step_{int(step):08d}.pt":
        hang()
    done = real_replace(src, dst, *args, **kwargs)
    if how == "renamed" and os.path.basename(dst) == f"step_{int(step):08d}.pt":
        hang()
    return done

def step_(self, *args, **kwargs):
    global updates
    updates += 1
    if how == "update" and updates == int(step):
        hang()
    return real_step(self, *args, **kwargs)

os.write, os.replace, torch.optim.Adam.step = write, replace, step_
sys.argv = ["tqpinn", *sys.argv[1:]]
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
        [sys.executable, str(driver), *(args if args[0] == "eval" else ["train", *args])],
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
        assert list((run / CHECKPOINT_DIR).glob(".step_00000006.pt.*.tmp.pt"))  # the cut write

        # 2. Resumed, killed with the step-15 checkpoint complete on disk but not renamed.
        proc = start(tmp_path, ["--resume", str(run)], hang="unrenamed:15")
        wait_until(marker.exists, proc)
        kill(proc)
        assert checkpoint_steps(run) == [9, 12]
        stale = [p.name for p in (run / CHECKPOINT_DIR).glob(".*.tmp.pt")]
        assert len(stale) == 1 and stale[0].startswith(".step_00000015.pt"), stale

        # 3. Resumed (from step 12), killed in the middle of update 12 + 5 = 17.
        marker.unlink()
        proc = start(tmp_path, ["--resume", str(run)], hang="update:5")
        wait_until(marker.exists, proc)
        kill(proc)
        assert checkpoint_steps(run) == [12, 15]
        assert logged_steps(run) == 16

        # 4. Resumed, killed with the final checkpoint renamed but the older ones not pruned.
        marker.unlink()
        proc = start(tmp_path, ["--resume", str(run)], hang=f"renamed:{STEPS}")
        wait_until(marker.exists, proc)
        kill(proc)
        assert checkpoint_steps(run) == [STEPS - 2 * EVERY, STEPS - EVERY, STEPS]

        # 5. Resumed at the end: it prunes, evaluates and writes the summary.
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
    assert not list((run / CHECKPOINT_DIR).glob(".*.tmp*"))  # stale temporaries cleaned up
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


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def resume_error(cfg, run_dir: Path) -> str:
    before = snapshot(run_dir)
    with pytest.raises(UserError) as err:
        trainer.train(cfg, run_dir, resume=True, progress_bar=False)
    assert snapshot(run_dir) == before  # nothing deleted, nothing written
    return str(err.value)


def rewrite(path: Path, state: dict) -> None:
    """Save ``state`` as a well-formed checkpoint file (with a checksum of its contents)."""
    content = {k: v for k, v in state.items() if k != CHECKSUM}
    torch.save({**content, CHECKSUM: state_digest(content)}, path)


def flip_low_bits(state: dict) -> dict:
    """``state`` with the lowest bit of 8 floats of its first weight flipped (relative change
    ~1e-7: no range or finiteness check could notice it)."""
    name = next(k for k, v in state["model"].items() if v.dim() == 2)
    bits = state["model"][name].clone().view(torch.int32)
    bits.view(-1)[:8] ^= 1
    return {**state, "model": {**state["model"], name: bits.view(torch.float32)}}


DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "zeroed": lambda path: path.write_bytes(b"\x00" * path.stat().st_size),
    "foreign": lambda path: path.write_bytes(b"not a checkpoint"),
    "empty": lambda path: path.write_bytes(b""),
    "low-bits": lambda path: torch.save(flip_low_bits(load_checkpoint(path)), path),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_newest_checkpoint_falls_back_to_the_older_one(finished_run, damage, capsys):
    cfg, run_dir = finished_run
    older, newest = list_checkpoints(run_dir)
    expected = load_checkpoint(newest)["model"]
    damage(newest)
    capsys.readouterr()
    trainer.train(cfg, run_dir, resume=True, progress_bar=False)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and str(newest) in warning[0] and str(older) in warning[0]
    assert "corrupted" in warning[0]
    assert_identical(load_checkpoint(newest)["model"], expected, "model")  # retrained exactly


def test_no_valid_checkpoint_is_one_error_naming_them(finished_run):
    cfg, run_dir = finished_run
    for path in list_checkpoints(run_dir):
        DAMAGES["low-bits"](path)
    message = resume_error(cfg, run_dir)
    assert message.startswith("no valid checkpoint")
    assert all(str(path) in message for path in list_checkpoints(run_dir))


def test_a_checkpoint_without_checksum_resumes_with_a_warning(finished_run, capsys):
    cfg, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    state = load_checkpoint(newest)
    torch.save({k: v for k, v in state.items() if k != CHECKSUM}, newest)
    capsys.readouterr()
    trainer.train(cfg, run_dir, resume=True, progress_bar=False)
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "no checksum" in warning[0] and str(newest) in warning[0]


def test_checkpoint_of_another_format_version_names_the_file(finished_run):
    cfg, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    rewrite(newest, {**load_checkpoint(newest), "format": "tqpinn-checkpoint-v0"})
    message = resume_error(cfg, run_dir)
    assert str(newest) in message and "'tqpinn-checkpoint-v0'" in message
    assert "'tqpinn-checkpoint-v1'" in message


def test_checkpoint_of_another_config_names_the_file_and_the_keys(finished_run):
    cfg, run_dir = finished_run
    other = config_from_dict({**cfg.to_dict(), "seed": 12})
    message = resume_error(other, run_dir)
    assert str(list_checkpoints(run_dir)[-1]) in message and "seed" in message


def wrong_shapes(state: dict) -> dict:
    return {**state, "model": {k: torch.zeros(3, *v.shape) for k, v in state["model"].items()}}


HAND_MADE = {  # (what the newest checkpoint becomes, what the error says is wrong)
    "only-the-format-tag": (lambda s: {"format": s["format"]}, "is incomplete"),
    "wrong-shapes": (wrong_shapes, "does not fit the model"),
    "wrong-shapes-no-checksum": (
        lambda s: {k: v for k, v in wrong_shapes(s).items() if k != CHECKSUM},
        "does not fit the model",
    ),
    "not-a-dict": (lambda s: [s["model"]], "holds a list, not a tqpinn checkpoint"),
    "step-past-the-end": (lambda s: {**s, "step": 99}, "at step 99, past train.steps=6"),
    "optimizer-of-another-model": (
        lambda s: {**s, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}},
        "does not fit this run",
    ),
}


@pytest.mark.parametrize(("make", "what"), HAND_MADE.values(), ids=HAND_MADE.keys())
def test_cli_resume_of_a_hand_made_checkpoint_is_one_line_exit_2(
    finished_run, monkeypatch, capsys, make, what
):
    _, run_dir = finished_run
    newest = list_checkpoints(run_dir)[-1]
    made = make(load_checkpoint(newest))
    if isinstance(made, dict) and CHECKSUM in made:
        rewrite(newest, made)
    else:
        torch.save(made, newest)
    before = snapshot(run_dir)
    monkeypatch.setattr(sys, "argv", ["tqpinn", "train", "--resume", str(run_dir)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(newest) in lines[0] and what in lines[0], lines
    assert snapshot(run_dir) == before


def test_cli_resume_with_no_valid_checkpoint_is_one_line_exit_2(finished_run, monkeypatch, capsys):
    _, run_dir = finished_run
    for path in list_checkpoints(run_dir):
        path.write_bytes(path.read_bytes()[:1000])
    monkeypatch.setattr(sys, "argv", ["tqpinn", "train", "--resume", str(run_dir)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and list_checkpoints(run_dir)[-1].name in lines[0]


def tqpinn(*args: str) -> subprocess.CompletedProcess:
    return run_tqpinn(*args, timeout=300, one_thread=True)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def refused_in_process(monkeypatch, capsys, *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["tqpinn", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    return one_line(capsys.readouterr().err)


def test_a_held_run_directory_refuses_every_other_process_until_its_holder_dies(
    tmp_path, monkeypatch, capsys
):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    run = tmp_path / "run"
    holder = start(tmp_path, ["--config", str(cfg), "--out", str(run)], hang=f"update:{EVERY + 2}")
    try:
        wait_until((tmp_path / "hanging").exists, holder)
        assert (run / LOCK_FILE).read_text().startswith(f"pid {holder.pid} on ")
        before = snapshot(run)
        result = tqpinn("train", "--resume", str(run))  # a real second process
        assert result.returncode == 2 and f"pid {holder.pid}" in one_line(result.stderr)
        for args in (
            ["train", "--config", str(cfg), "--out", str(run)],
            ["train", "--config", str(cfg), "--out", str(run), "--overwrite"],
            ["eval", str(run)],
        ):
            assert f"pid {holder.pid}" in refused_in_process(monkeypatch, capsys, *args)
        assert snapshot(run) == before
        kill(holder)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    summary = trainer.train(config_from_dict(CONFIG), run, resume=True, progress_bar=False)
    assert summary["steps"] == STEPS and (run / LOCK_FILE).read_text() == ""


def test_ctrl_c_while_starting_is_one_line_exit_130(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tqpinn", "train", "--out", str(tmp_path / "run")],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(1.0)  # importing torch takes longer: Ctrl-C lands while the command starts
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and one_line(stderr).startswith("interrupted:")


def test_ctrl_c_while_training_prints_the_command_that_resumes(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    run = tmp_path / "run"
    proc = start(tmp_path, ["--config", str(cfg), "--out", str(run)], hang=f"update:{EVERY + 2}")
    wait_until((tmp_path / "hanging").exists, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert one_line(stderr) == f"interrupted: continue with: tqpinn train --resume {run}"
    assert checkpoint_steps(run) == [EVERY] and (run / LOCK_FILE).read_text() == ""


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs mounted for the test (needs root, or the permission to mount)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_disk_full_is_one_line_naming_the_file_and_keeps_finished_checkpoints(
    tmp_path, small_tmpfs
):
    data = json.loads(json.dumps(CONFIG))
    data["model"]["widths"] = [64, 64]
    data["train"].update(steps=12, checkpoint_every=2)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(data))
    sized = tmp_path / "sized"
    assert tqpinn("train", "--config", str(cfg), "--out", str(sized)).returncode == 0
    checkpoint_bytes = list_checkpoints(sized)[-1].stat().st_size
    # Leave room for the small files and 1.5 checkpoints: a later checkpoint cannot fit.
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    ballast = small_tmpfs / "ballast"
    ballast.write_bytes(b"\0" * (free - int(1.5 * checkpoint_bytes) - 4 * 4096))
    run = small_tmpfs / "run"
    result = tqpinn("train", "--config", str(cfg), "--out", str(run))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"error: cannot write {run}/") and "No space left on device" in line
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    finished = checkpoint_steps(run)  # each complete, its checksum verified
    assert finished and finished == list(range(2, 2 * len(finished) + 1, 2))
