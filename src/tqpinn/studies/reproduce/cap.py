"""A stated budget cap: fewer steps, fewer Stein pairs than the recipe, said plainly in the report.

The paper's recipes (1000 steps, or 10,000 for HJB-20D, with 512-1024 Stein pairs) cost hours
per Stein variant on a CPU; a cap runs every variant at the largest budget that fits instead.
``steps`` replaces ``train.steps`` of every variant (the learning-rate schedule then spans the
capped run; the trainer evaluates, logs and checkpoints at the last step whatever the intervals);
``pairs`` replaces ``estimator.pairs`` of the variants that train with Stein, and no other.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tqpinn.errors import UserError


def _positive(value: int | None, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{what} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class BudgetCap:
    """steps: training steps of every variant; pairs: Stein's antithetic pairs (K) of the Stein
    variants; None keeps the recipe's."""

    steps: int | None = None
    pairs: int | None = None

    def __post_init__(self) -> None:
        _positive(self.steps, "the steps cap (--steps)")
        _positive(self.pairs, "the pairs cap (--pairs)")

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """A copy of the plain config ``data`` with the cap in place."""
        capped = copy.deepcopy(data)
        if self.steps is not None:
            capped["train"]["steps"] = self.steps
        if self.pairs is not None and capped["estimator"]["name"] == "stein":
            capped["estimator"]["pairs"] = self.pairs
        return capped

    def capped_at(self) -> str:
        """What is capped, as in ", capped at 200 steps, 64 pairs"; "" without a cap."""
        caps = [f"{n} {unit}" for n, unit in ((self.steps, "steps"), (self.pairs, "pairs")) if n]
        return f", capped at {', '.join(caps)}" if caps else ""

    def describe(self, budget: str, recipe: dict[str, Any]) -> str:
        """One line: the budget, the cap if any, and the recipe's own numbers, e.g.
        "budget: paper, capped at 200 steps, 64 pairs (recipe: 1000 steps, 512 pairs)"."""
        pairs = f", {recipe['pairs']} pairs" if recipe["pairs"] is not None else ""
        return f"budget: {budget}{self.capped_at()} (recipe: {recipe['steps']} steps{pairs})"


NO_CAP = BudgetCap()
