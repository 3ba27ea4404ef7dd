"""The training loop: fresh collocation points each step, Adam, evaluation, checkpoints, outputs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from tqpinn import __version__
from tqpinn.derivatives.base import Estimator
from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition, Problem
from tqpinn.train.build import build_estimator, build_model, build_problem, resolve_conditions
from tqpinn.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tqpinn.train.config import Config, config_from_dict
from tqpinn.train.loss import pinn_loss, predict
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

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def build_run(config: Config, device: str = "cpu") -> Run:
    """Seeded construction: the same config always gives the same initial state."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu")
    torch.manual_seed(config.seed)
    problem = build_problem(config)
    conditions = resolve_conditions(config, problem)
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
    )


def sample_batch(run: Run) -> dict[str, torch.Tensor]:
    """Fresh collocation points for every condition, drawn from the run's generator."""
    return {c.name: c.sample(c.points, run.generator).to(run.device) for c in run.conditions}


def train_step(run: Run, step: int) -> dict[str, float]:
    """One Adam update (0-based ``step``); returns the loss and its unweighted terms."""
    cfg = run.config.train
    lr = learning_rate(cfg.lr, cfg.schedule, step, cfg.steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = sample_batch(run)
    loss, terms = pinn_loss(
        run.problem, run.net, run.estimator, run.conditions, batch, run.generator
    )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return {"loss": loss.item(), **{f"loss_{k}": v.item() for k, v in terms.items()}, "lr": lr}


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
    }


def restore(run: Run, path: Path) -> tuple[int, float]:
    """Load a checkpoint into ``run``; returns (step, wall seconds so far)."""
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if state["config"] != run.config.to_dict():
        saved = config_from_dict(state["config"]).to_dict()
        changed = _changed_keys(saved, run.config.to_dict())
        raise UserError(f"checkpoint {path} was written with a different config (keys {changed})")
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.generator.set_state(state["generator"])
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
) -> dict[str, Any]:
    """Train ``config``, writing the contract outputs into ``out_dir``; returns the summary.

    With ``resume``, continue from the newest checkpoint in ``out_dir``: the final parameters are
    bit-identical to those of an uninterrupted run.
    """
    run = build_run(config, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, wall_before = 0, 0.0
    if resume:
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None:
            raise UserError(f"--resume {out_dir}: no checkpoint found in {out_dir / 'checkpoints'}")
        start, wall_before = restore(run, ckpt)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    log = MetricsLog(out_dir / "metrics.jsonl", resume_step=start if resume else None)
    cfg = config.train
    history = [r for r in MetricsLog.read(log.path) if "rel_l2" in r]
    final = evaluate(run) if start == cfg.steps else {}
    t0 = time.perf_counter()
    with Progress(total=cfg.steps, start=start, bar=progress_bar) as progress:
        for step in range(start, cfg.steps):
            record = {"step": step + 1, **train_step(run, step)}
            done = step + 1
            if done % cfg.eval_every == 0 or done == cfg.steps:
                final = evaluate(run)
                record.update(final)
                if final:
                    history.append(record)
            if done % cfg.log_every == 0 or "rel_l2" in record or done == cfg.steps:
                log.write(record)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save_checkpoint(out_dir, done, checkpoint_state(run, done, _wall(t0, wall_before)))
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
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
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
