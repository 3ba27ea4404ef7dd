"""Checkpoint files (atomic, checksummed, the last few kept, loaded without executing code),
and the atomic writes every output of a run uses."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import RunError, UserError
from tqpinn.train.digest import state_digest

CHECKPOINT_DIR = "checkpoints"
KEEP_LAST = 2
CHECKSUM = "checksum"
"""The key of a checkpoint's digest of all its other keys (absent before tqpinn 0.2)."""


class DamagedCheckpoint(UserError):
    """A checkpoint file that cannot be read, or whose contents do not match its checksum."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints of a run, oldest first (temporary files never match)."""
    folder = run_dir / CHECKPOINT_DIR
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _output_mode() -> int:
    """The mode a new file gets from the user's umask (``mkstemp`` alone would give 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write in full; renamed to ``path`` on
    success, removed on failure. A write error (disk full, no permission) is a RunError naming
    ``path``, and the temporary file is gone."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
        )
        os.close(fd)
    except OSError as err:
        raise RunError(f"cannot write {path}: {err.strerror}") from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _output_mode())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part of it)."""
    rest = memoryview(data)
    while rest:
        rest = rest[os.write(fd, rest) :]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that it either exists complete or not at all: temp file, fsync, rename."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text (a reader never sees a half-written file)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any]) -> Path:
    """Save ``state`` with its checksum for ``step`` atomically, then prune older checkpoints.

    The state is serialized in memory first: writing it to the file is then one plain write,
    whose errors (disk full) are reported as such.
    """
    path = checkpoint_path(run_dir, step)
    buffer = io.BytesIO()
    torch.save({**state, CHECKSUM: state_digest(state)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    prune_checkpoints(run_dir, keep=path)
    return path


def prune_checkpoints(run_dir: Path, keep: Path) -> None:
    """Drop all but the last KEEP_LAST checkpoints, never ``keep`` (the one a run continues
    from), and the temporary file of any write that a killed process left behind."""
    stale = (run_dir / CHECKPOINT_DIR).glob(".step_*.tmp*")
    for old in [*list_checkpoints(run_dir)[:-KEEP_LAST], *stale]:
        if old != keep:
            old.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code execution) and verify its checksum
    where it has one (see :func:`has_checksum`).

    A file that cannot be read or does not match its checksum is a DamagedCheckpoint; a file
    that is not a dict is a UserError. Both name the path.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except Exception as err:  # a truncated or foreign file: report which one, keep the others
        raise DamagedCheckpoint(
            f"checkpoint {path} is corrupted or not a tqpinn checkpoint ({first_sentence(err)})"
        ) from None
    if not isinstance(state, dict):
        raise UserError(
            f"checkpoint {path} holds a {type(state).__name__}, not a tqpinn checkpoint (a dict)"
        )
    if CHECKSUM in state:
        content = {k: v for k, v in state.items() if k != CHECKSUM}
        try:
            digest = state_digest(content)
        except TypeError as err:
            raise UserError(f"checkpoint {path} is not a tqpinn checkpoint ({err})") from None
        if digest != state[CHECKSUM]:
            raise DamagedCheckpoint(
                f"checkpoint {path} is corrupted (its contents do not match its checksum)"
            )
    return state


def first_sentence(err: BaseException) -> str:
    """The gist of an error from torch or the OS: its first line, up to its first full stop."""
    text = str(err).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__


def has_checksum(state: dict[str, Any]) -> bool:
    """Whether a loaded checkpoint was verified (checkpoints of tqpinn 0.1.0 have no checksum)."""
    return CHECKSUM in state
