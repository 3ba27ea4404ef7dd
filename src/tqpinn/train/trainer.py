"""The training loop: fresh collocation points each step, Adam, evaluation, checkpoints, outputs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from tqpinn import __version__
from tqpinn.derivatives.base import Estimator
from tqpinn.devices import check_device
from tqpinn.errors import UserError
from tqpinn.nn.precision import quant_generators
from tqpinn.pdes.base import Condition, Problem
from tqpinn.train.build import build_estimator, build_model, build_problem, resolve_conditions
from tqpinn.train.checkpoint import (
    atomic_write_text,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tqpinn.train.config import Config, config_from_dict
from tqpinn.train.distributed import SINGLE_PROCESS, Shard, check_shares, shard_loss, sum_over_ranks
from tqpinn.train.guard import DivergenceGuard, nonfinite
from tqpinn.train.limits import check_fits
from tqpinn.train.loss import predict
from tqpinn.train.metrics import MetricsLog, error_metrics
from tqpinn.train.progress import Progress
from tqpinn.train.schedule import learning_rate

CHECKPOINT_FORMAT = "tqpinn-checkpoint-v1"
EVAL_SEED_OFFSET = (
    1_000_003  # evaluation randomness (smoothed Stein values) never touches training's
)


@dataclass
class Run:
    """Everything a training run is made of, built from a config."""

    config: Config
    problem: Problem
    net: nn.Module
    estimator: Estimator
    conditions: tuple[Condition, ...]
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    test_x: torch.Tensor
    test_u: torch.Tensor | None
    shard: Shard = SINGLE_PROCESS
    guard: DivergenceGuard = field(default_factory=DivergenceGuard)

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def build_run(config: Config, device: str = "cpu", shard: Shard = SINGLE_PROCESS) -> Run:
    """Seeded construction: the same config always gives the same initial state (on every
    rank of a data-parallel run)."""
    dev = torch.device(check_device(device))
    check_fits(config, dev, rows_share=1 / shard.world)
    torch.manual_seed(config.seed)
    problem = build_problem(config)
    conditions = resolve_conditions(config, problem)
    check_shares(shard, conditions)
    net = build_model(config, problem).to(dev)
    estimator = build_estimator(config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.train.lr)
    generator = torch.Generator().manual_seed(config.seed)
    test_x = problem.test_points(config.train.eval_points)
    test_u = problem.exact(test_x)
    return Run(
        config,
        problem,
        net,
        estimator,
        conditions,
        optimizer,
        generator,
        dev,
        test_x.to(dev),
        None if test_u is None else test_u.to(dev),
        shard,
        DivergenceGuard(
            config.train.on_nonfinite,
            config.train.rollback_lr_factor,
            config.train.nonfinite_patience,
        ),
    )


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
        run.shard, run.problem, run.net, run.estimator, run.conditions, batch, run.generator
    )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    values = sum_over_ranks(run.shard, torch.stack([loss, *terms.values()]), run.net.parameters())
    loss_f, *terms_f = values.tolist()
    record = {"loss": loss_f, **{f"loss_{k}": v for k, v in zip(terms, terms_f, strict=True)}}
    bad = nonfinite(values, run.net.parameters())
    if bad is None:
        run.optimizer.step()
        run.guard.healthy()
    else:
        record.update(run.guard.handle(step + 1, bad, run.net, run.optimizer))
    return {**record, "lr": lr}


def predict_test_set(run: Run) -> torch.Tensor:
    """The model's solution on the fixed test set (N,), with its own seeded randomness."""
    generator = torch.Generator().manual_seed(run.config.seed + EVAL_SEED_OFFSET)
    return predict(run.problem, run.net, run.estimator, run.test_x, generator)


def evaluate(run: Run) -> dict[str, float]:
    """Errors against the exact solution on the fixed test set (empty without one)."""
    if run.test_u is None:
        return {}
    return error_metrics(predict_test_set(run), run.test_u)


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
        "quant_generators": [g.get_state() for g in quant_generators(run.net)],
        "guard": run.guard.state_dict(),
    }


def restore(run: Run, path: Path) -> tuple[int, float]:
    """Load a checkpoint into ``run``; returns (step, wall seconds so far)."""
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
        for generator, saved in zip(quant_generators(run.net), saved_quant, strict=True):
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


def train(
    config: Config,
    out_dir: Path,
    resume: bool = False,
    device: str = "cpu",
    progress_bar: bool | None = None,
    shard: Shard = SINGLE_PROCESS,
) -> dict[str, Any]:
    """Train ``config``, writing the contract outputs into ``out_dir``; returns the summary.

    With ``resume``, continue from the newest checkpoint in ``out_dir``: the final parameters are
    bit-identical to those of an uninterrupted run. In a data-parallel run every rank calls this
    with its ``shard`` (tqpinn.train.distributed.data_parallel); rank 0 evaluates and writes
    every output, and only its summary holds the errors.
    """
    run = build_run(config, device, shard)
    main = shard.is_main
    out_dir.mkdir(parents=True, exist_ok=True)
    start, wall_before, ckpt = 0, 0.0, None
    if resume:
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None:
            raise UserError(f"--resume {out_dir}: no checkpoint found in {out_dir / 'checkpoints'}")
        start, wall_before = restore(run, ckpt)
    run.guard.remember(run.net, run.optimizer, ckpt)
    cfg = config.train
    history, final = [], {}
    if main:
        atomic_write_text(
            out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False)
        )
        log = MetricsLog(out_dir / "metrics.jsonl", resume_step=start if resume else None)
        history = [r for r in MetricsLog.read(log.path) if "rel_l2" in r]
        final = evaluate(run) if start == cfg.steps else {}
    t0 = time.perf_counter()
    with Progress(total=cfg.steps, start=start, bar=progress_bar if main else False) as progress:
        for step in range(start, cfg.steps):
            record = {"step": step + 1, **train_step(run, step)}
            done = step + 1
            if main and (done % cfg.eval_every == 0 or done == cfg.steps):
                final = evaluate(run)
                record.update(final)
                if final:
                    history.append(record)
            logged = done % cfg.log_every == 0 or done == cfg.steps
            if main and (logged or "rel_l2" in record or "nonfinite" in record):
                log.write(record)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                path = checkpoint_path(out_dir, done)
                if main:
                    state = checkpoint_state(run, done, _wall(t0, wall_before))
                    save_checkpoint(out_dir, done, state)
                run.guard.remember(run.net, run.optimizer, path)
            if main:
                progress.update(record)
    summary = {
        **final,
        "steps": cfg.steps,
        "wall_seconds": _wall(t0, wall_before),
        "n_params": run.n_params,
        "problem": run.problem.name,
        "estimator": config.estimator.name,
        "quant": config.quant,
        "seed": config.seed,
        **run.guard.metrics(),
    }
    if main:
        atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
        write_plots(run, out_dir, history)
    return summary


def _wall(t0: float, before: float) -> float:
    return before + time.perf_counter() - t0


def write_plots(run: Run, out_dir: Path, history: list[dict[str, Any]]) -> None:
    """Error vs step for every problem; solution and error maps for 2-D problems."""
    from tqpinn.report.plots import plot_error_history, plot_solution_2d

    if history:
        plot_error_history(history, out_dir / "error_vs_step.png", title=run.problem.name)
    if run.test_u is not None and run.problem.input_dim == 2:
        plot_solution_2d(
            run.test_x.cpu(),
            predict_test_set(run).cpu(),
            run.test_u.cpu(),
            out_dir / "solution.png",
            title=run.problem.name,
        )
