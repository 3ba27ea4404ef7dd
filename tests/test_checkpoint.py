"""Checkpoint files: atomic, newest two kept, safe loading."""

import pytest
import torch

from tqpinn.errors import UserError
from tqpinn.train.checkpoint import (
    atomic_write_bytes,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def test_keeps_the_last_two_in_step_order(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000015.pt", "step_00000020.pt"]
    assert load_checkpoint(list_checkpoints(tmp_path)[-1])["step"] == 20


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "checkpoints" / "step_00000001.pt"
    atomic_write_bytes(target, lambda f: f.write(b"old"))

    def crash(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(target, crash)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": object()}, path)  # arbitrary objects need unpickling of code
    with pytest.raises(UserError, match=r"evil\.pt"):
        load_checkpoint(path)
