"""Trace and time the real training step of a config: exactly what ``tqpinn train`` runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tqpinn.hw.platforms import time_step
from tqpinn.hw.recorder import record_step
from tqpinn.hw.trace import Trace
from tqpinn.train.config import Config
from tqpinn.train.trainer import Run, build_run, train_step


@dataclass
class StepRunner:
    """A built run whose next training step can be traced or timed (steps keep counting)."""

    config: Config
    run: Run
    next_step: int = 0

    @classmethod
    def build(cls, config: Config, warmup_steps: int = 1) -> StepRunner:
        """Build the run and take ``warmup_steps`` untraced steps, so that the traced one is a
        steady-state step (Adam's state already allocated)."""
        runner = cls(config, build_run(config))
        for _ in range(warmup_steps):
            runner.step()
        return runner

    def step(self) -> dict[str, float]:
        out = train_step(self.run, self.next_step % self.config.train.steps)
        self.next_step += 1
        return out

    def meta(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "problem": self.run.problem.name,
            "dim": self.run.problem.dim,
            "estimator": cfg.estimator.model_dump(),
            "quant": cfg.quant.given,
            "widths": list(cfg.model.widths),
            "points": {c.name: c.points for c in self.run.conditions},
            "steps": cfg.train.steps,
            "n_params": self.run.n_params,
            "torch": torch.__version__,
            "config_sha256": cfg.digest(),
        }

    def trace(self) -> Trace:
        return record_step(self.step, meta=self.meta())

    def wall_seconds(self, repeats: int = 3) -> float:
        return time_step(self.step, repeats)
