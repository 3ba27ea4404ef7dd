"""The rules of a run directory: what counts as a run's output, when a fresh run may start there,
and replacing an old run (``--overwrite``) without ever leaving a mix of two runs.

Only tqpinn's own outputs count and only they are ever removed: other files in the directory
are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tqpinn.errors import UserError
from tqpinn.pdes.source import SOURCE_COPY
from tqpinn.train.checkpoint import CHECKPOINT_DIR, list_checkpoints

RUN_OUTPUTS = (
    "config.yaml",
    "metrics.jsonl",
    "metrics.json",
    "eval.json",
    "error_vs_step.png",
    "solution.png",
    SOURCE_COPY,
    CHECKPOINT_DIR,
)
"""Every file or folder a run writes into its directory (besides the lock file)."""
_REPLACED_PREFIX = ".replaced-run-"


def check_out_dir(run_dir: Path) -> None:
    """A UserError unless ``run_dir`` is a directory or can become one (nothing is created)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} exists and is not a directory")
    for parent in run_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"run directory {run_dir}: {parent} is not a directory")
            return


def run_outputs(run_dir: Path) -> list[str]:
    """The names of the run outputs present in ``run_dir`` (their interrupted temporary files
    included), in RUN_OUTPUTS order."""
    if not run_dir.is_dir():
        return []
    return [
        name
        for name in RUN_OUTPUTS
        if os.path.lexists(run_dir / name) or any(run_dir.glob(f".{name}.*.tmp*"))
    ]


def refuse_fresh_run(run_dir: Path) -> None:
    """A UserError if ``run_dir`` holds another run's outputs: a fresh run never mixes with,
    nor destroys, an old one unless asked to replace it."""
    found = run_outputs(run_dir)
    if not found:
        return
    if list_checkpoints(run_dir):
        how = f"continue it with --resume {run_dir}, or replace it with --overwrite"
    else:
        how = "it has no checkpoint to resume from; replace it with --overwrite"
    raise UserError(f"run directory {run_dir} already holds a run ({', '.join(found)}); {how}")


def remove_run(run_dir: Path) -> None:
    """Remove every run output from ``run_dir`` (hold its lock). Each output is first moved
    into one hidden folder, then that folder is deleted: an interruption leaves either old
    outputs in place (and nothing new yet) or the hidden folder, never half a file."""
    leftovers = sorted(run_dir.glob(f"{_REPLACED_PREFIX}*"))
    found = run_outputs(run_dir)
    if found:
        aside = Path(tempfile.mkdtemp(prefix=_REPLACED_PREFIX, dir=run_dir))
        for name in found:
            for path in [run_dir / name, *run_dir.glob(f".{name}.*.tmp*")]:
                if os.path.lexists(path):
                    path.rename(aside / path.name)
        leftovers.append(aside)
    for folder in leftovers:
        shutil.rmtree(folder)
