"""Evaluate a finished (or interrupted) run from its directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqpinn.errors import UserError
from tqpinn.train.checkpoint import latest_checkpoint
from tqpinn.train.config import config_from_dict, read_yaml
from tqpinn.train.trainer import build_run, evaluate, restore


def evaluate_run(run_dir: Path, device: str = "cpu") -> dict[str, Any]:
    """Errors of the newest checkpoint in ``run_dir`` against the exact solution."""
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    config = config_from_dict(read_yaml(run_dir / "config.yaml"))
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise UserError(f"no checkpoint in {run_dir / 'checkpoints'}")
    run = build_run(config, device)
    step, _ = restore(run, ckpt)
    return {"checkpoint": ckpt.name, "step": step, "problem": run.problem.name, **evaluate(run)}
