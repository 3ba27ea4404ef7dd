"""The exclusive lock of a run directory: one process at a time trains, resumes or evaluates there.

The lock is an OS lock (``flock``) on the file ``tqpinn.lock`` in the run directory, which also
holds the holder's pid and host for the message of whoever is refused. The OS drops the lock when
its process ends, however it ends (``kill -9`` included), so a dead holder never blocks; the file
itself stays (deleting a lock file races with a process about to lock it) and is emptied on a
clean release.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from tqpinn.errors import RunError, UserError

LOCK_FILE = "tqpinn.lock"
_HOLDER_READS = 20  # a holder writes its pid just after locking: wait up to 20 x 10 ms for it


class RunLock:
    """Held from :meth:`acquire` until :meth:`release` (or the end of the process)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd, self.path = fd, path

    @classmethod
    def acquire(cls, run_dir: Path, what: str) -> RunLock:
        """Lock ``run_dir`` (created if missing) for ``what`` (e.g. "train"); a UserError naming
        the holder's pid if another process holds it, or naming the directory if it cannot be
        written."""
        path = run_dir / LOCK_FILE
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise UserError(f"cannot write to run directory {run_dir}: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _held(run_dir, path, what) from None
        except OSError as err:
            os.close(fd)
            raise UserError(f"cannot lock run directory {run_dir}: {err.strerror}") from None
        lock = cls(fd, path)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        except OSError as err:
            lock.release()
            raise RunError(f"cannot write {path}: {err.strerror}") from None
        return lock

    @staticmethod
    def check_free(run_dir: Path, what: str) -> None:
        """The UserError of :meth:`acquire` if another process holds ``run_dir``'s lock now;
        creates nothing (a refused run leaves no trace)."""
        path = run_dir / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # no lock file (or none readable): acquire() decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _held(run_dir, path, what) from None
        except OSError:
            return  # e.g. a file system that locks only writable files: acquire() decides
        finally:
            os.close(fd)

    def release(self) -> None:
        """Empty the lock file and unlock it (idempotent)."""
        if self._fd < 0:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _held(run_dir: Path, path: Path, what: str) -> UserError:
    return UserError(
        f"run directory {run_dir} is in use by {_holder(path)} (lock {path}); "
        f"cannot {what} there until it ends"
    )


def _holder(path: Path) -> str:
    """What the lock file says about its holder ("pid 123 on host"), read when it has been
    written: the holder fills it in just after taking the lock."""
    for _ in range(_HOLDER_READS):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if text:
            return f"process {text}"
        time.sleep(0.01)
    return "another process (its pid not yet written)"
