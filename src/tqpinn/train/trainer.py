"""The training loop: fresh collocation points each step, Adam, evaluation, checkpoints, outputs.

A run is built by :func:`tqpinn.train.run.build_run`; rank 0's outputs live in
:mod:`tqpinn.train.outputs`, checkpoint contents in :mod:`tqpinn.train.resume`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition
from tqpinn.quant import fastpath
from tqpinn.train.checkpoint import checkpoint_path, prune_checkpoints
from tqpinn.train.config import Config
from tqpinn.train.distributed import SINGLE_PROCESS, Shard, shard_loss, sum_over_ranks
from tqpinn.train.lock import RunLock
from tqpinn.train.outputs import Outputs, open_outputs
from tqpinn.train.resume import ResumePoint, Warn, resume_newest
from tqpinn.train.run import Run, build_run
from tqpinn.train.rundir import check_out_dir, refuse_fresh_run, remove_run
from tqpinn.train.schedule import learning_rate

__all__ = ["Run", "build_run", "sample_batch", "train", "train_step"]


def sample_batch(run: Run) -> dict[str, torch.Tensor]:
    """Fresh collocation points for every condition, drawn from the run's generator."""
    return {
        c.name: _checked(run, c, c.sample(c.points, run.generator)).to(run.device)
        for c in run.conditions
    }


def _checked(run: Run, cond: Condition, x: object) -> torch.Tensor:
    """A sampler's points as the estimators need them: finite floats (points, input_dim).
    User-defined problems plug in here, so anything else is a UserError naming the sampler."""
    shape = (cond.points, run.problem.input_dim)
    if not isinstance(x, torch.Tensor):
        got = type(x).__name__
    elif not x.is_floating_point() or tuple(x.shape) != shape:
        got = f"{x.dtype} of shape {tuple(x.shape)}"
    elif not bool(torch.isfinite(x).all()):
        got = "points holding NaN or Inf"
    else:
        return x
    raise UserError(
        f"problem {run.problem.name!r}: the sampler of condition {cond.name!r} returned {got}; "
        f"expected finite floating-point points of shape {shape}"
    )


def train_step(run: Run, step: int) -> dict[str, Any]:
    """One Adam update (0-based ``step``); returns the loss and its unweighted terms.

    Data-parallel: each rank computes its rows' share and the gradients are summed over ranks.
    A non-finite loss or gradient is handled by ``run.guard`` instead of updating.
    """
    cfg = run.config.train
    lr = run.guard.lr_scale * learning_rate(cfg.lr, cfg.schedule, step, cfg.steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = sample_batch(run)
    loss, terms = shard_loss(
        run.shard,
        run.problem,
        run.net,
        run.estimator,
        run.conditions,
        batch,
        run.estimator_generator,
    )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    values = sum_over_ranks(run.shard, torch.stack([loss, *terms.values()]), run.net.parameters())
    loss_f, *terms_f = values.tolist()
    record = {"loss": loss_f, **{f"loss_{k}": v for k, v in zip(terms, terms_f, strict=True)}}
    bad = run.guard.diverged(values, run.net.parameters())
    if bad is None:
        run.optimizer.step()
        run.guard.healthy()
    else:
        record.update(run.guard.handle(step + 1, bad, run.net, run.optimizer))
    return {**record, "lr": lr}


def train(
    config: Config,
    out_dir: Path,
    resume: bool = False,
    device: str = "cpu",
    progress_bar: bool | None = None,
    shard: Shard = SINGLE_PROCESS,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train ``config``, writing the contract outputs into ``out_dir``; returns the summary.

    The run holds the lock of ``out_dir`` (tqpinn.train.lock) from start to end. A fresh run
    refuses a directory that holds another run's outputs, unless ``overwrite`` (which removes
    them first, under the lock). With ``resume``, continue from the newest valid checkpoint in
    ``out_dir``: the final parameters are bit-identical to those of an uninterrupted run. In a
    data-parallel run every rank calls this with its ``shard``
    (tqpinn.train.distributed.data_parallel); rank 0 locks, evaluates and writes every output,
    and only its summary holds the errors.
    """
    if resume and overwrite:
        raise UserError("--resume continues a run and --overwrite replaces it: choose one")
    action = "resume" if resume else "overwrite" if overwrite else "train"
    if shard.is_main:  # the other ranks never write, and would see rank 0's outputs appear
        check_out_dir(out_dir)
        RunLock.check_free(out_dir, action)  # these checks first: a refused run touches nothing
        if not (resume or overwrite):
            refuse_fresh_run(out_dir)
    run = build_run(config, device, shard)
    lock = RunLock.acquire(out_dir, action) if shard.is_main else contextlib.nullcontext()
    with lock:
        point = _start(run, out_dir, resume, overwrite)
        start, wall_before = (0, 0.0) if point is None else (point.step, point.wall_seconds)
        note = {} if point is None else point.record_fields()
        with open_outputs(run, out_dir, start, resume, progress_bar) as outputs:
            t0 = time.perf_counter()

            def wall() -> float:
                return wall_before + time.perf_counter() - t0

            for step in range(start, config.train.steps):
                _step(run, step, outputs, out_dir, wall, note if step == start else {})
        summary = _summary(run, outputs.final, wall())
        outputs.finish(summary)
    return summary


def _start(run: Run, out_dir: Path, resume: bool, overwrite: bool) -> ResumePoint | None:
    """Under the lock: remove the old run (``overwrite``), or check again that there is none
    (a fresh run), or restore the newest valid checkpoint (``resume``; else None)."""
    main = run.shard.is_main
    if main and overwrite:
        remove_run(out_dir)
    elif main and not resume:
        refuse_fresh_run(out_dir)
    note = fastpath.slow_path_note() if main and run.spec is not None else None
    if note is not None:
        _warn(note)
    return _resume_point(run, out_dir, resume, _warn if main else _quiet)


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _quiet(line: str) -> None:
    """Ranks other than 0 say nothing: rank 0 says it once."""


def _resume_point(run: Run, out_dir: Path, resume: bool, warn: Warn) -> ResumePoint | None:
    """The checkpoint restored into ``run`` with ``resume`` (None: a fresh run from step 0).
    Rank 0 prunes older checkpoints, as after every save: a kill between a checkpoint's
    rename and the pruning leaves one too many."""
    point = resume_newest(run, out_dir, warn) if resume else None
    run.guard.remember(run.net, run.optimizer, None if point is None else point.path)
    if point is not None and run.shard.is_main:
        prune_checkpoints(out_dir, keep=point.path)
    return point


def _step(
    run: Run,
    step: int,
    outputs: Outputs,
    out_dir: Path,
    wall: Callable[[], float],
    note: dict[str, Any],
) -> None:
    """Train step ``step`` (0-based); evaluate, log and checkpoint where due. ``note``: extra
    fields of this step's record."""
    cfg = run.config.train
    done = step + 1
    record = {"step": done, **train_step(run, step), **note}
    outputs.after_step(
        record,
        evaluate_now=_due(done, cfg.eval_every, cfg.steps),
        log_now=_due(done, cfg.log_every, cfg.steps),
    )
    run.guard.raise_if_stopped()  # after the diverged step's metrics line, before a checkpoint
    if _due(done, cfg.checkpoint_every, cfg.steps):
        outputs.checkpoint(done, wall())
        run.guard.remember(run.net, run.optimizer, checkpoint_path(out_dir, done))
    outputs.show(record)


def _due(done: int, every: int, steps: int) -> bool:
    """Whether a periodic action runs after ``done`` steps: every ``every``, and at the end."""
    return done % every == 0 or done == steps


def _summary(run: Run, final: dict[str, float], wall_seconds: float) -> dict[str, Any]:
    config = run.config
    return {
        **final,
        "steps": config.train.steps,
        "wall_seconds": wall_seconds,
        "n_params": run.n_params,
        "problem": run.problem.name,
        "estimator": config.estimator.name,
        "quant": config.quant.given,
        **({} if run.spec is None else {"kernels": fastpath.describe()}),
        "seed": config.seed,
        **run.guard.metrics(),
    }
