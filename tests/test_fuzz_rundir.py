"""Fuzzed bad run directories: every case ends in one line and exit 2 (user errors) or 1 (the
machine), never a traceback, and leaves every finished file as it was; random damage to a
checkpoint either ends so or resumes to exactly the undamaged result.

The CLI runs in-process (``tqpinn.cli.main`` with ``sys.argv`` set), on copies of one finished
run made once per module.
"""

import errno
import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqpinn.cli import main
from tqpinn.train import checkpoint
from tqpinn.train.checkpoint import CHECKSUM, list_checkpoints, load_checkpoint
from tqpinn.train.digest import state_digest

CONFIG = {
    "seed": 2,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [8]},
    "train": {
        "steps": 4,
        "log_every": 1,
        "eval_every": 2,
        "eval_points": 50,
        "checkpoint_every": 2,
        "points": {"interior": 8, "boundary": 8},
    },
}


def run_cli(*args: str) -> tuple[int, str]:
    """(exit code, stderr) of the CLI run in this process."""
    saved_argv, sys.argv = sys.argv, ["tqpinn", *args]
    err = sys.stderr
    try:
        sys.stderr = io.StringIO()
        try:
            main()
            code = 0
        except SystemExit as exit_info:
            code = exit_info.code
        return code, sys.stderr.getvalue()
    finally:
        sys.stderr, sys.argv = err, saved_argv


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_rundir")
    (root / "config.json").write_text(json.dumps(CONFIG))
    code, err = run_cli("train", "--config", str(root / "config.json"), "--out", str(root / "run"))
    assert code == 0, err
    return root


@pytest.fixture
def run(original, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(original / "run", copy)
    return copy


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def resave(path: Path, state) -> None:
    """Save ``state`` with a valid checksum where it is a dict (a well-made foreign file)."""
    if isinstance(state, dict):
        content = {k: v for k, v in state.items() if k != CHECKSUM}
        state = {**content, CHECKSUM: state_digest(content)}
    torch.save(state, path)


def newest(run: Path) -> Path:
    return list_checkpoints(run)[-1]


def damage_all(run: Path) -> None:
    for path in list_checkpoints(run):
        path.write_bytes(path.read_bytes()[:200])


def wrong_shapes(run: Path) -> None:
    state = load_checkpoint(newest(run))
    resave(newest(run), {**state, "model": {k: torch.zeros(5, 5) for k in state["model"]}})


def garble_log(run: Path) -> None:
    log = run / "metrics.jsonl"
    log.write_text("{not json}\n" + log.read_text())


def resume(spoil: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    """Spoil the run, then resume it."""

    def args(run: Path, cfg: Path) -> list[str]:
        spoil(run)
        return ["--resume", str(run)]

    return args


# name: (arguments of `tqpinn train` given the run and a config file (spoiling the run first),
# the exit code, a fragment of the one line)
CASES: dict[str, tuple[Callable[[Path, Path], list[str]], int, str]] = {
    "fresh-run-on-a-run": (
        lambda run, cfg: ["--config", str(cfg), "--out", str(run)],
        2,
        "--overwrite",
    ),
    "resume-and-overwrite": (
        lambda run, cfg: ["--resume", str(run), "--overwrite"],
        2,
        "choose one",
    ),
    "every-checkpoint-damaged": (resume(damage_all), 2, "no valid checkpoint"),
    "only-the-format-tag": (
        resume(lambda run: resave(newest(run), {"format": "tqpinn-checkpoint-v1"})),
        2,
        "is incomplete",
    ),
    "wrong-shapes": (resume(wrong_shapes), 2, "does not fit the model"),
    "not-a-dict": (resume(lambda run: resave(newest(run), [1, 2])), 2, "holds a list"),
    "metrics-log-garbled": (resume(garble_log), 2, "line 1 is not a metrics record"),
    "another-config": (
        lambda run, cfg: ["--resume", str(run), "--set", "seed=9"],
        2,
        "different config (keys ['seed'])",
    ),
    "fewer-steps-than-done": (
        lambda run, cfg: ["--resume", str(run), "--set", "train.steps=3"],
        2,
        "past train.steps=3",
    ),
    "out-is-a-file": (
        lambda run, cfg: ["--config", str(cfg), "--out", str(run / "config.yaml")],
        2,
        "is not a directory",
    ),
    "config-is-a-directory": (
        lambda run, cfg: ["--config", str(run), "--out", str(run / "x")],
        2,
        "is a directory",
    ),
    "resume-where-no-run-is": (
        lambda run, cfg: ["--resume", str(run / "checkpoints")],
        2,
        "no run there",
    ),
}


@pytest.mark.parametrize(("spoil", "code", "fragment"), CASES.values(), ids=CASES.keys())
def test_each_bad_run_directory_is_one_line_and_changes_nothing(
    run, original, spoil, code, fragment
):
    args = spoil(run, original / "config.json")
    before = snapshot(run)
    got, err = run_cli("train", *args)
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines
    assert snapshot(run) == before


def test_disk_full_is_one_line_exit_1_and_changes_no_finished_file(run, monkeypatch):
    before = snapshot(run)

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "write", full)
    got, err = run_cli("train", "--resume", str(run), "--set", "train.steps=6")
    assert got == 1 and err.startswith(f"error: cannot write {run}") and len(err.splitlines()) == 1
    assert "No space left on device" in err
    assert snapshot(run) == before


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    offsets=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4), both=st.booleans()
)
def test_random_damage_ends_in_one_line_or_resumes_exactly(
    original, tmp_path_factory, offsets, both
):
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(original / "run", run)
    expected = load_checkpoint(newest(run))["model"]
    for path in list_checkpoints(run)[-2 if both else -1 :]:
        data = bytearray(path.read_bytes())
        for offset in offsets:
            data[int(offset * len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
    got, err = run_cli("train", "--resume", str(run))
    assert "Traceback" not in err
    if got == 0:
        final = load_checkpoint(newest(run))["model"]
        assert final.keys() == expected.keys()
        assert all(torch.equal(final[k], expected[k]) for k in final)
    else:
        assert got == 2 and len(err.strip().splitlines()) == 1, err
