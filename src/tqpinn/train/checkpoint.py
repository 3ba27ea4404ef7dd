"""Checkpoints: atomic writes, the last few kept, loaded without executing code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import UserError

CHECKPOINT_DIR = "checkpoints"
KEEP_LAST = 2


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints of a run, oldest first (temporary files never match)."""
    folder = run_dir / CHECKPOINT_DIR
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file so that it either exists complete or not at all: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text (a reader never sees a half-written file)."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any]) -> Path:
    """Save ``state`` for ``step`` atomically, then drop all but the last KEEP_LAST, and the
    temporary file of any write that a killed process left behind."""
    path = checkpoint_path(run_dir, step)
    atomic_write_bytes(path, lambda f: torch.save(state, f))
    stale = (run_dir / CHECKPOINT_DIR).glob(".step_*.tmp")
    for old in [*list_checkpoints(run_dir)[:-KEEP_LAST], *stale]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code execution); bad files name the path."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except Exception as err:  # a truncated or foreign file: report which one, keep the others
        raise UserError(
            f"checkpoint {path} is corrupted or not a tqpinn checkpoint ({err})"
        ) from None


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None
