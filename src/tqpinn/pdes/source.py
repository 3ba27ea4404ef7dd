"""A run directory keeps a copy of its user problem's file, so that resuming or evaluating it
later uses the same code or says that the code changed.

A config names a user problem as "/absolute/path/file.py:Object" (tqpinn.pdes.loader.
resolved_reference makes the path absolute when the config is loaded). A fresh run copies the
file to ``problem_source.py`` in its directory; a resumed or evaluated run compares the file
with that copy, byte for byte, and refuses in one line when the file is missing or differs.
Only the named file is kept, not the modules it imports; a "pkg.module:Object" reference is
not copied (it depends on the Python path, as any import does).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqpinn.errors import UserError
from tqpinn.pdes.loader import is_object_reference, is_path

SOURCE_COPY = "problem_source.py"


def problem_file(name: str) -> Path | None:
    """The file of a "file.py:Object" problem reference, None for any other problem name."""
    source = name.rpartition(":")[0]
    return Path(source) if is_object_reference(name) and is_path(source) else None


def keep_problem_source(name: str, run_dir: Path, resume: bool) -> None:
    """A fresh run: copy the problem file into ``run_dir``; a resumed one: check it is unchanged
    (:func:`check_problem_source`). Nothing for a registered problem or a module."""
    if resume:
        check_problem_source(name, run_dir)
        return
    path = problem_file(name)
    if path is not None:
        (run_dir / SOURCE_COPY).write_bytes(path.read_bytes())


def check_problem_source(name: str, run_dir: Path) -> None:
    """UserError when the problem file of the run in ``run_dir`` is missing or no longer the
    copy kept there (runs without a copy, written before copies were kept, pass)."""
    path, copy = problem_file(name), run_dir / SOURCE_COPY
    if path is None or not copy.is_file():
        return
    if not path.is_file():
        raise UserError(
            f"problem file {path} of the run in {run_dir} is missing; restore it from the "
            f"run's copy {copy}"
        )
    now, kept = _digest(path.read_bytes()), _digest(copy.read_bytes())
    if now != kept:
        raise UserError(
            f"problem file {path} changed since the run in {run_dir} started (sha256 {now[:12]}, "
            f"the run's copy {copy} has {kept[:12]}); restore the copy, or start a new run"
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
