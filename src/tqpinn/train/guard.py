"""Divergence guard: a non-finite loss or gradient is caught every step and handled by policy.

Policies (config ``train.on_nonfinite``):
    stop      raise :class:`DivergenceError`; no update, no checkpoint of the bad state, so the
              newest checkpoint on disk is the last good one;
    skip      drop the update (the step counter, schedule and sampling go on);
    rollback  restore the parameters and optimizer state of the newest checkpoint (the state at
              the start of the run before the first one) and multiply the learning rate by
              ``lr_factor``; the step counter goes on, so step numbers stay increasing.
Skip and rollback give up after ``patience`` non-finite steps in a row: a run that produces
NaN every step stops instead of silently going nowhere.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tqpinn.errors import RunError

POLICIES = ("stop", "skip", "rollback")


class DivergenceError(RunError):
    """Training produced a non-finite loss or gradient and the policy says stop."""


def nonfinite(values: torch.Tensor, params: Iterable[nn.Parameter]) -> str | None:
    """What is non-finite: "loss" if ``values`` (the loss and its terms) hold NaN/±Inf,
    "gradient" if a gradient does, None if all are finite. One host synchronisation."""
    grads = [p.grad for p in params if p.grad is not None]
    flags = torch.stack(
        [torch.isfinite(values).all(), *(torch.isfinite(g).all() for g in grads)]
    ).cpu()
    if not flags[0]:
        return "loss"
    return None if bool(flags.all()) else "gradient"


@dataclass
class DivergenceGuard:
    """Policy, counters and the rollback target of one run (its state is checkpointed)."""

    policy: str = "stop"
    lr_factor: float = 0.5
    patience: int = 10
    lr_scale: float = 1.0
    """Multiplies the scheduled learning rate; each rollback multiplies it by lr_factor."""
    nonfinite_steps: int = 0
    rollbacks: int = 0
    in_a_row: int = 0
    last_checkpoint: Path | None = None
    _target: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown non-finite policy {self.policy!r}; choose from {POLICIES}")

    def remember(
        self, net: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path | None
    ) -> None:
        """Keep a copy of the current (checkpointed) state as the rollback target."""
        self.last_checkpoint = checkpoint
        if self.policy == "rollback":
            self._target = copy.deepcopy(
                {"model": net.state_dict(), "optimizer": optimizer.state_dict()}
            )

    def healthy(self) -> None:
        self.in_a_row = 0

    def handle(
        self, step: int, what: str, net: nn.Module, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        """Apply the policy to the non-finite update ``step`` (1-based, not applied yet);
        returns the fields of its metrics record. Raises DivergenceError to stop."""
        self.nonfinite_steps += 1
        self.in_a_row += 1
        if self.policy == "stop" or self.in_a_row > self.patience:
            raise DivergenceError(self._stop_message(step, what))
        optimizer.zero_grad(set_to_none=True)
        if self.policy == "rollback":
            # Loading must not alias the target: Adam updates its state tensors in place.
            target = copy.deepcopy(self._target)
            net.load_state_dict(target["model"])
            optimizer.load_state_dict(target["optimizer"])
            self.lr_scale *= self.lr_factor
            self.rollbacks += 1
        return {"nonfinite": what, "action": self.policy, **self.metrics()}

    def _stop_message(self, step: int, what: str) -> str:
        why = (
            "train.on_nonfinite=stop"
            if self.policy == "stop"
            else f"{self.in_a_row} non-finite steps in a row > train.nonfinite_patience"
        )
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"non-finite {what} at step {step}: training stopped ({why}); {kept}. "
            "Lower train.lr, or set train.on_nonfinite to 'skip' or 'rollback'"
        )

    def metrics(self) -> dict[str, Any]:
        return {
            "nonfinite_steps": self.nonfinite_steps,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**self.metrics(), "in_a_row": self.in_a_row}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.in_a_row = int(state.get("in_a_row", 0))
