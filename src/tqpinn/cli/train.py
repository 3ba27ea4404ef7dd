"""``tqpinn train`` and ``tqpinn eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

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
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Train a PINN; writes config.yaml, metrics.jsonl, metrics.json, checkpoints and plots.

    Data-parallel over several processes: torchrun --nproc-per-node N -m tqpinn train ...
    """
    from tqpinn.devices import check_device
    from tqpinn.train.distributed import data_parallel
    from tqpinn.train.trainer import train

    check_device(device)
    overrides = list(set_ or []) + ([f"problem.name={problem}"] if problem else [])
    if resume is not None and out is not None and out != resume:
        raise UserError(
            f"--resume {resume} and --out {out} differ: a run resumes in its own directory"
        )
    out = resume if resume is not None else out
    if out is None:
        raise UserError("--out DIR is required (or --resume DIR to continue a run)")
    cfg = load_config(config, overrides, resume_dir=resume)
    with data_parallel(device) as shard:
        summary = train(cfg, out, resume=resume is not None, device=device, shard=shard)
    if shard.is_main:
        print(json.dumps(summary, indent=2))


def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A training output directory.")],
) -> None:
    """Re-evaluate the newest checkpoint of a run on its test set; writes eval.json."""
    from tqpinn.train.evaluate import evaluate_run

    result = evaluate_run(run_dir)
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
