"""Checkpoint contents of a run: what is saved, choosing the checkpoint to continue from, and
restoring it into a freshly built run.

A resumed run may change one key of its config, ``train.steps`` (to at least the checkpoint's
step): the learning-rate schedule is then that of the new total from the resumed step on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tqpinn import __version__
from tqpinn.errors import UserError
from tqpinn.train.checkpoint import (
    CHECKPOINT_DIR,
    DamagedCheckpoint,
    first_sentence,
    has_checksum,
    list_checkpoints,
    load_checkpoint,
)
from tqpinn.train.config import config_from_dict
from tqpinn.train.run import Run

CHECKPOINT_FORMAT = "tqpinn-checkpoint-v1"
CHANGEABLE_ON_RESUME = ("train.steps",)
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "step": int,
    "config": dict,
    "wall_seconds": (int, float),
    "model": dict,
    "optimizer": dict,
    "generator": torch.Tensor,
}
"""The keys every checkpoint holds, with their types."""

Warn = Callable[[str], None]


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: the checkpoint used, its step, the wall seconds trained
    so far, and the run's previous ``train.steps`` if the resume changed it (else None)."""

    path: Path
    step: int
    wall_seconds: float
    steps_before: int | None

    def record_fields(self) -> dict[str, int]:
        """Fields of the first step record after the resume: the previous ``train.steps``
        where the resume changed it."""
        return {} if self.steps_before is None else {"steps_before": self.steps_before}


def checkpoint_state(run: Run, step: int, wall_seconds: float) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "tqpinn_version": __version__,
        "step": step,
        "config": run.config.to_dict(),
        "wall_seconds": wall_seconds,
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "generator": run.generator.get_state(),
        "quant_generators": [g.get_state() for g in run.quant_generators],
        "device_directions": (
            None if run.device_directions is None else run.device_directions.get_state()
        ),
        "guard": run.guard.state_dict(),
    }


def resume_newest(run: Run, run_dir: Path, warn: Warn) -> ResumePoint:
    """Restore the newest valid checkpoint of ``run_dir`` into ``run``.

    A damaged newest checkpoint (unreadable, or not matching its checksum) gives way to the
    newest valid one, with one warning naming both; none valid is a UserError naming each.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise UserError(f"no checkpoint found in {run_dir / CHECKPOINT_DIR}")
    damaged: list[str] = []
    for path in reversed(found):
        try:
            state = load_checkpoint(path)
        except DamagedCheckpoint as err:
            damaged.append(str(err))
            continue
        point = _restore_state(run, path, state)  # warn once it fits: an error is one line
        if damaged:
            more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
            warn(f"warning: {damaged[0]}{more}; continuing from the older checkpoint {path}")
        if not has_checksum(state):
            warn(
                f"warning: checkpoint {path} has no checksum (written by tqpinn 0.1.0); unverified"
            )
        return point
    raise UserError(f"no valid checkpoint in {run_dir / CHECKPOINT_DIR}: {'; '.join(damaged)}")


def restore(run: Run, path: Path) -> ResumePoint:
    """Load the checkpoint ``path`` into ``run``, its own spec's generator included. A damaged
    file, or anything that does not fit the run, is a UserError naming ``path``."""
    return _restore_state(run, path, load_checkpoint(path))


def _restore_state(run: Run, path: Path, state: dict[str, Any]) -> ResumePoint:
    """:func:`restore` of a checkpoint's loaded ``state``."""
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            f"checkpoint {path} has format {state.get('format')!r}; tqpinn {__version__} reads "
            f"{CHECKPOINT_FORMAT!r} (older checkpoints in its folder are kept)"
        )
    bad = [k for k, kind in _FIELDS.items() if not isinstance(state.get(k), kind)]
    if bad:
        raise UserError(f"checkpoint {path} is incomplete: {bad} missing or of the wrong type")
    step, steps_before = int(state["step"]), _check_config(run, path, state)
    if not 0 <= step <= run.config.train.steps:
        raise UserError(
            f"checkpoint {path} is at step {step}, past train.steps={run.config.train.steps}: "
            f"resume with --set train.steps=N for some N >= {step}"
        )
    _check_model(run, path, state["model"])
    try:
        run.net.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.generator.set_state(state["generator"])
        saved_quant = state.get("quant_generators")  # absent from checkpoints of tqpinn <= 0.1.0
        if saved_quant is not None:
            for generator, saved in zip(run.quant_generators, saved_quant, strict=True):
                generator.set_state(saved)
        if run.device_directions is not None:
            run.device_directions.set_state(state["device_directions"])
        run.guard.load_state_dict(state.get("guard", {}))
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
        raise UserError(
            f"checkpoint {path} does not fit this run ({first_sentence(err)})"
        ) from None
    return ResumePoint(path, step, float(state["wall_seconds"]), steps_before)


def _check_config(run: Run, path: Path, state: dict[str, Any]) -> int | None:
    """UserError unless the checkpoint's config is the run's, up to CHANGEABLE_ON_RESUME;
    returns the checkpoint's ``train.steps`` if it differs from the run's, else None."""
    if state["config"] == run.config.to_dict():
        return None
    try:
        saved = config_from_dict(state["config"])
    except UserError as err:
        raise UserError(f"checkpoint {path} holds an invalid config ({err})") from None
    changed = _changed_keys(saved.to_dict(), run.config.to_dict())
    fixed = [k for k in changed if k not in CHANGEABLE_ON_RESUME]
    if fixed:
        raise UserError(
            f"checkpoint {path} was written with a different config (keys {fixed}); "
            f"a resumed run may change only {list(CHANGEABLE_ON_RESUME)}"
        )
    return saved.train.steps if changed else None


def _check_model(run: Run, path: Path, saved: dict[str, Any]) -> None:
    """UserError naming the first parameter whose name or shape differs from the model's."""
    own = run.net.state_dict()
    for name in sorted(set(own) | set(saved)):
        if name not in saved:
            problem = f"has no {name!r}"
        elif name not in own:
            problem = f"holds {name!r}, which the model does not have"
        elif not isinstance(saved[name], torch.Tensor):
            problem = f"holds a {type(saved[name]).__name__} as {name!r}"
        elif saved[name].shape != own[name].shape:
            problem = (
                f"holds {name!r} of shape {tuple(saved[name].shape)}; "
                f"the model of its config has {tuple(own[name].shape)}"
            )
        else:
            continue
        raise UserError(f"checkpoint {path} does not fit the model of its config: it {problem}")


def _changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _changed_keys(va, vb, f"{prefix}{key}.")
        elif va != vb:
            keys.append(prefix + key)
    return keys
