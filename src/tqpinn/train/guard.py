"""Divergence guard: a non-finite or exploding loss, or a non-finite gradient, is caught every
step and handled by policy.

A step diverges when its loss or a gradient holds NaN/±Inf, or when its loss exceeds
``explode_factor`` times the smallest loss of the run so far (an explosion: Adam bounds every
update by about the learning rate, so a too-large rate drives the loss up without ever making it
non-finite). Policies (config ``train.on_nonfinite``):
    stop      no update, and the run stops after the step's metrics line is written; no
              checkpoint of the bad state, so the newest checkpoint on disk is the last good one;
    skip      drop the update (the step counter, schedule and sampling go on);
    rollback  restore the parameters and optimizer state of the newest checkpoint (the state at
              the start of the run before the first one) and multiply the learning rate by
              ``lr_factor``; the step counter goes on, so step numbers stay increasing.
Skip and rollback give up after ``patience`` diverged steps in a row, and rollback after
``max_rollbacks`` rollbacks in the whole run: a run that keeps diverging stops instead of
silently going nowhere. A non-finite step 1 (before any update) is a user error: the problem's
residuals or data, not the training, produce it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tqpinn.errors import RunError, UserError

POLICIES = ("stop", "skip", "rollback")
EXPLOSION = "explosion"
"""What :meth:`DivergenceGuard.diverged` calls a finite loss above explode_factor x its minimum."""


class DivergenceError(RunError):
    """Training diverged (a non-finite or exploding step) and the policy says stop."""


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
    max_rollbacks: int = 10
    explode_factor: float | None = None
    """None: no explosion check."""
    lr_scale: float = 1.0
    """Multiplies the scheduled learning rate; each rollback multiplies it by lr_factor."""
    nonfinite_steps: int = 0
    """Diverged steps of the run (non-finite or exploding)."""
    rollbacks: int = 0
    in_a_row: int = 0
    loss_min: float = math.inf
    """Smallest loss of a healthy step so far: the reference of the explosion check."""
    last_checkpoint: Path | None = None
    _target: dict[str, Any] | None = field(default=None, repr=False)
    _stop: Exception | None = field(default=None, repr=False)
    _explosion: str = field(default="", repr=False)
    """How the last explosion exceeded the bound, for the stop message."""

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

    def diverged(self, values: torch.Tensor, params: Iterable[nn.Parameter]) -> str | None:
        """What diverged in a step whose ``values`` are [loss, *terms]: "loss" or "gradient"
        (non-finite), "explosion", or None for a healthy step, whose loss then updates the
        running minimum."""
        bad = nonfinite(values, params)
        if bad is not None:
            return bad
        loss = float(values[0].detach())
        if self.explode_factor is not None and loss > self.explode_factor * self.loss_min:
            self._explosion = f"loss {loss:.3g} > train.explode_factor={self.explode_factor:g}"
            self._explosion += f" x its running minimum {self.loss_min:.3g}"
            return EXPLOSION
        self.loss_min = min(self.loss_min, loss)
        return None

    def healthy(self) -> None:
        self.in_a_row = 0

    def handle(
        self, step: int, what: str, net: nn.Module, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any]:
        """Apply the policy to the diverged update ``step`` (1-based, not applied yet); returns
        the fields of its metrics record. When the run must stop, the record says so and
        :meth:`raise_if_stopped` raises after the trainer has logged it."""
        self.nonfinite_steps += 1
        self.in_a_row += 1
        optimizer.zero_grad(set_to_none=True)
        reason = self._give_up_reason(step, what)
        if reason is not None:
            self._stop = reason
            return {"nonfinite": what, "action": "stop", **self.metrics()}
        if self.policy == "rollback":
            # Loading must not alias the target: Adam updates its state tensors in place.
            target = copy.deepcopy(self._target)
            net.load_state_dict(target["model"])
            optimizer.load_state_dict(target["optimizer"])
            self.lr_scale *= self.lr_factor
            self.rollbacks += 1
        return {"nonfinite": what, "action": self.policy, **self.metrics()}

    def raise_if_stopped(self) -> None:
        """Raise the error of a step that stopped the run (after its metrics line is written)."""
        if self._stop is not None:
            raise self._stop

    def _give_up_reason(self, step: int, what: str) -> Exception | None:
        """The error that stops the run at this diverged step, or None to apply the policy."""
        if step == 1 and what != EXPLOSION:
            return UserError(
                f"non-finite {what} at step 1, before any update: the problem's residuals, "
                "samplers or exact solution produce NaN/Inf at the initial network (its loss "
                "terms are in metrics.jsonl); training stopped"
            )
        if self.policy == "stop":
            why, advice = (
                "train.on_nonfinite=stop",
                "set train.on_nonfinite to 'skip' or 'rollback'",
            )
        elif self.in_a_row > self.patience:
            why = f"{self.in_a_row} diverged steps in a row > train.nonfinite_patience"
            advice = "raise train.nonfinite_patience" + (
                ", or set train.on_nonfinite to 'rollback'" if self.policy == "skip" else ""
            )
        elif self.policy == "rollback" and self.rollbacks >= self.max_rollbacks:
            why = f"{self.rollbacks} rollbacks already = train.max_rollbacks"
            advice = "raise train.max_rollbacks"
        else:
            return None
        kept = (
            f"the last good checkpoint is {self.last_checkpoint}"
            if self.last_checkpoint is not None
            else "no checkpoint had been written yet"
        )
        event = f"exploding loss ({self._explosion})" if what == EXPLOSION else f"non-finite {what}"
        if what == EXPLOSION:
            advice += ", or raise train.explode_factor (null turns the check off)"
        return DivergenceError(
            f"{event} at step {step}: training stopped ({why}); {kept}. Lower train.lr, or {advice}"
        )

    def metrics(self) -> dict[str, Any]:
        return {
            "nonfinite_steps": self.nonfinite_steps,
            "rollbacks": self.rollbacks,
            "lr_scale": self.lr_scale,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**self.metrics(), "in_a_row": self.in_a_row, "loss_min": self.loss_min}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.in_a_row = int(state.get("in_a_row", 0))
        self.loss_min = float(state.get("loss_min", math.inf))
