"""Run directories through the command line (in-process): a fresh run never destroys an old one,
unusable paths and a full disk are one line, Ctrl-C says how to continue."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tqpinn.cli import main
from tqpinn.train import checkpoint, trainer
from tqpinn.train.checkpoint import list_checkpoints, load_checkpoint

SHORT = [
    "--set",
    "model.widths=[8]",
    "--set",
    "train.steps=4",
    "--set",
    "train.eval_every=2",
    "--set",
    "train.eval_points=50",
    "--set",
    "train.checkpoint_every=2",
    "--set",
    "train.log_every=1",
    "--set",
    "train.points={interior: 8, boundary: 8}",
]


def tqpinn(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    """Run the CLI in this process: (exit code, stderr lines)."""
    monkeypatch.setattr(sys, "argv", ["tqpinn", *args])
    code = 0
    try:
        main()
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture
def finished(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert tqpinn(monkeypatch, capsys, "train", "--out", str(run), *SHORT)[0] == 0
    return run


def test_a_fresh_run_on_a_finished_one_is_refused_and_touches_nothing(
    finished, monkeypatch, capsys
):
    before = snapshot(finished)
    code, lines = tqpinn(
        monkeypatch, capsys, "train", "--out", str(finished), *SHORT, "--set", "train.steps=2"
    )
    assert code == 2 and len(lines) == 1
    assert f"--resume {finished}" in lines[0] and "--overwrite" in lines[0]
    assert snapshot(finished) == before


def test_overwrite_leaves_only_the_new_run(finished, monkeypatch, capsys):
    code, _ = tqpinn(
        monkeypatch,
        capsys,
        "train",
        "--out",
        str(finished),
        "--overwrite",
        *SHORT,
        "--set",
        "train.steps=2",
    )
    assert code == 0
    steps = [json.loads(line)["step"] for line in (finished / "metrics.jsonl").open()]
    assert steps == [1, 2]
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(finished)] == [2]
    assert not [p for p in finished.iterdir() if p.name.startswith(".")]


def test_resume_and_overwrite_together_are_refused(finished, monkeypatch, capsys):
    code, lines = tqpinn(monkeypatch, capsys, "train", "--resume", str(finished), "--overwrite")
    assert code == 2 and len(lines) == 1 and "choose one" in lines[0]


def test_out_naming_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "file"
    target.write_text("keep")
    for out in (target, target / "run"):
        code, lines = tqpinn(monkeypatch, capsys, "train", "--out", str(out), *SHORT)
        assert code == 2 and len(lines) == 1 and "is not a directory" in lines[0], lines
    assert target.read_text() == "keep"


def read_only_dir(tmp_path: Path) -> Path:
    """A directory this process cannot write to: chmod for a user, a read-only mount for root
    (who writes through any mode)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"root, and cannot mount a read-only tmpfs: {done.stderr.strip()}")
    return folder


def test_out_in_a_read_only_directory_is_one_line(tmp_path, monkeypatch, capsys):
    folder = read_only_dir(tmp_path)
    try:
        for out in (folder, folder / "run"):
            code, lines = tqpinn(monkeypatch, capsys, "train", "--out", str(out), *SHORT)
            assert code == 2 and len(lines) == 1, lines
            assert f"cannot write to run directory {out}" in lines[0]
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=True)


def test_config_naming_a_directory_says_so(tmp_path, monkeypatch, capsys):
    code, lines = tqpinn(
        monkeypatch, capsys, "train", "--config", str(tmp_path), "--out", str(tmp_path / "r")
    )
    assert code == 2 and lines == [
        f"error: --config {tmp_path} is a directory; give a YAML config file"
    ]


def test_resume_of_a_directory_without_a_run_is_one_line(tmp_path, monkeypatch, capsys):
    code, lines = tqpinn(monkeypatch, capsys, "train", "--resume", str(tmp_path))
    assert code == 2 and len(lines) == 1 and "no run there" in lines[0]


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_finished_ones(
    tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    real_write = os.write

    def full_at_step_4(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".step_00000004"):
            real_write(fd, bytes(data[:100]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(checkpoint.os, "write", full_at_step_4)
    code, lines = tqpinn(monkeypatch, capsys, "train", "--out", str(run), *SHORT)
    assert code == 1 and lines == [
        f"error: cannot write {run}/checkpoints/step_00000004.pt: No space left on device"
    ]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_00000002.pt"]
    assert load_checkpoint(run / "checkpoints" / "step_00000002.pt")["step"] == 2


def test_disk_full_while_logging_cuts_the_partial_line(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_write = os.write
    lines_written = []

    def full_at_third_line(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            lines_written.append(data)
            if len(lines_written) == 3:
                real_write(fd, bytes(data[:10]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(checkpoint.os, "write", full_at_third_line)
    code, lines = tqpinn(monkeypatch, capsys, "train", "--out", str(run), *SHORT)
    assert code == 1 and lines == [
        f"error: cannot write {run}/metrics.jsonl: No space left on device"
    ]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]


def test_ctrl_c_while_training_prints_how_to_resume(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real_step = trainer.train_step

    def interrupted_at_step_4(run_, step):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(run_, step)

    monkeypatch.setattr(trainer, "train_step", interrupted_at_step_4)
    code, lines = tqpinn(monkeypatch, capsys, "train", "--out", str(run), *SHORT)
    assert code == 130 and lines == [f"interrupted: continue with: tqpinn train --resume {run}"]
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert tqpinn(monkeypatch, capsys, "train", "--resume", str(run))[0] == 0


def test_eval_of_a_run_with_a_damaged_newest_checkpoint_warns_and_uses_the_older(
    finished, monkeypatch, capsys
):
    older, newest = list_checkpoints(finished)
    newest.write_bytes(b"")
    code, lines = tqpinn(monkeypatch, capsys, "eval", str(finished))
    assert code == 0 and len(lines) == 1 and str(newest) in lines[0] and str(older) in lines[0]
    assert json.loads((finished / "eval.json").read_text())["step"] == 2
