"""Checkpoint files: atomic, checksummed, newest two kept, safe loading; outputs get the umask."""

import errno
import os
import stat

import pytest
import torch

from tqpinn.errors import RunError, UserError
from tqpinn.train import checkpoint
from tqpinn.train.checkpoint import (
    CHECKSUM,
    DamagedCheckpoint,
    atomic_write_bytes,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from tqpinn.train.digest import state_digest


def test_keeps_the_last_two_in_step_order(tmp_path):
    for step in (5, 10, 15, 20):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000015.pt", "step_00000020.pt"]
    assert load_checkpoint(list_checkpoints(tmp_path)[-1])["step"] == 20


def test_pruning_never_drops_the_checkpoint_a_run_continues_from(tmp_path):
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, step, {"step": step})
    (tmp_path / "checkpoints" / "step_00000001.pt").write_bytes(b"")
    oldest = list_checkpoints(tmp_path)[0]
    prune_checkpoints(tmp_path, keep=oldest)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_00000001.pt",
        "step_00000010.pt",
        "step_00000015.pt",
    ]


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "step_00000001.pt"
    atomic_write_bytes(target, b"old")
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data[:3]))  # part of it reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.os, "write", full_disk)
    with pytest.raises(RunError) as err:
        atomic_write_bytes(target, b"new contents")
    assert str(err.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": object()}, path)  # arbitrary objects need unpickling of code
    with pytest.raises(UserError, match=r"evil\.pt"):
        load_checkpoint(path)


def flip_low_bits(tensor: torch.Tensor, count: int = 8) -> torch.Tensor:
    """The tensor with the lowest mantissa bit of its first ``count`` float32 values flipped."""
    bits = tensor.detach().clone().contiguous().view(torch.int32)
    bits.view(-1)[:count] ^= 1
    return bits.view(torch.float32)


def test_checksum_catches_eight_flipped_low_bits(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"step": 1, "w": torch.randn(4, 4)})
    state = torch.load(path, weights_only=True)
    damaged = flip_low_bits(state["w"])
    assert (damaged - state["w"]).abs().max() < 1e-6  # too small for any range check to see
    torch.save({**state, "w": damaged}, path)
    with pytest.raises(DamagedCheckpoint, match="do not match its checksum"):
        load_checkpoint(path)


def test_digest_sees_every_kind_of_change():
    state = {"step": 3, "cfg": {"lr": 0.1, "name": "x"}, "w": torch.zeros(2), "b": (0.9, 0.99)}
    changes = [
        {**state, "step": 4},
        {**state, "cfg": {"lr": 0.1000001, "name": "x"}},
        {**state, "w": torch.zeros(2, 1)},
        {**state, "w": torch.zeros(2, dtype=torch.float64)},
        {**state, "extra": None},
    ]
    digests = {state_digest(s) for s in [state, *changes]}
    assert len(digests) == 1 + len(changes)
    assert state_digest({**state, "b": [0.9, 0.99]}) == state_digest(state)  # tuples load as lists


def test_a_checkpoint_without_checksum_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"step": 1, "w": torch.ones(2)}, path)  # as tqpinn 0.1.0 wrote them
    state = load_checkpoint(path)
    assert CHECKSUM not in state and state["step"] == 1


def test_outputs_get_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path, 1, {"step": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
