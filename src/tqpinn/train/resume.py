"""Checkpoint contents of a run: what is saved, and restoring it into a freshly built run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqpinn import __version__
from tqpinn.errors import UserError
from tqpinn.train.checkpoint import load_checkpoint
from tqpinn.train.config import config_from_dict
from tqpinn.train.run import Run

CHECKPOINT_FORMAT = "tqpinn-checkpoint-v1"


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
        "guard": run.guard.state_dict(),
    }


def restore(run: Run, path: Path) -> tuple[int, float]:
    """Load a checkpoint into ``run`` (its own spec's generator included); returns (step,
    wall seconds so far)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise UserError(
            f"checkpoint {path} has format {found!r}; tqpinn {__version__} reads "
            f"{CHECKPOINT_FORMAT!r} (older checkpoints in its folder are kept)"
        )
    if state["config"] != run.config.to_dict():
        saved = config_from_dict(state["config"]).to_dict()
        changed = _changed_keys(saved, run.config.to_dict())
        raise UserError(f"checkpoint {path} was written with a different config (keys {changed})")
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["generator"])
    saved_quant = state.get("quant_generators")  # absent from checkpoints of tqpinn <= 0.1.0
    if saved_quant is not None:
        for generator, saved in zip(run.quant_generators, saved_quant, strict=True):
            generator.set_state(saved)
    run.guard.load_state_dict(state.get("guard", {}))
    return int(state["step"]), float(state["wall_seconds"])


def _changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _changed_keys(va, vb, f"{prefix}{key}.")
        elif va != vb:
            keys.append(prefix + key)
    return keys
