"""``tqpinn train`` and ``tqpinn eval``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from tqpinn.cli.common import exit_interrupted
from tqpinn.errors import UserError
from tqpinn.train.config import load_config


def train_command(
    config: Annotated[Path | None, typer.Option(help="YAML config file.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory.")] = None,
    problem: Annotated[
        str | None, typer.Option(help="Shorthand for --set problem.name=NAME.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: key.sub=value (YAML).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this directory (--set train.steps=N extends it)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run that --out already holds (removed first).")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Train a PINN; writes config.yaml, metrics.jsonl, metrics.json, checkpoints and plots.

    A run directory belongs to one process at a time, and a fresh run never replaces an old
    one unless given --overwrite.

    Data-parallel over several processes: torchrun --nproc-per-node N -m tqpinn train ...
    """
    if resume is not None and out is not None and out != resume:
        raise UserError(
            f"--resume {resume} and --out {out} differ: a run resumes in its own directory"
        )
    out = resume if resume is not None else out
    if out is None:
        raise UserError("--out DIR is required (or --resume DIR to continue a run)")
    try:
        _train(config, out, problem, set_, resume is not None, overwrite, device)
    except KeyboardInterrupt:
        exit_interrupted(_how_to_continue(out))


def _train(
    config: Path | None,
    out: Path,
    problem: str | None,
    set_: list[str] | None,
    resume: bool,
    overwrite: bool,
    device: str,
) -> None:
    from tqpinn.devices import check_device
    from tqpinn.train.distributed import data_parallel
    from tqpinn.train.trainer import train

    check_device(device)
    if config is not None and config.is_dir():
        raise UserError(f"--config {config} is a directory; give a YAML config file")
    if resume and config is None and not (out / "config.yaml").is_file():
        raise UserError(f"--resume {out}: no run there (no {out / 'config.yaml'})")
    overrides = list(set_ or []) + ([f"problem.name={problem}"] if problem else [])
    cfg = load_config(config, overrides, resume_dir=out if resume else None)
    with data_parallel(device) as shard:
        summary = train(cfg, out, resume=resume, device=device, shard=shard, overwrite=overwrite)
    if shard.is_main:
        print(json.dumps(summary, indent=2))


def _how_to_continue(out: Path) -> str:
    """What the run directory allows after a Ctrl-C, judged by what it holds."""
    from tqpinn.train.checkpoint import latest_checkpoint
    from tqpinn.train.rundir import run_outputs

    if latest_checkpoint(out) is not None:
        return f"continue with: tqpinn train --resume {out}"
    if run_outputs(out):
        return f"{out} has no checkpoint yet; start again with --overwrite"
    return f"nothing was written to {out}"


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A training output directory.")],
) -> None:
    """Re-evaluate the newest valid checkpoint of a run on its test set; writes eval.json."""
    from tqpinn.train.checkpoint import atomic_write_text
    from tqpinn.train.evaluate import evaluate_run
    from tqpinn.train.lock import RunLock

    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    try:
        with RunLock.acquire(run_dir, "evaluate"):
            result = evaluate_run(run_dir, warn=_to_stderr)
            atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    except KeyboardInterrupt:
        exit_interrupted(f"{run_dir} is unchanged")
    print(json.dumps(result, indent=2))
