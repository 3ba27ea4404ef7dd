"""Pareto fronts and target search over the design points of a sweep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def pareto_front(speedup: Sequence[float], saving: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both speedup and energy saving (both
    maximised), in order of increasing speedup."""
    order = sorted(range(len(speedup)), key=lambda i: (-speedup[i], -saving[i]))
    front, best_saving = [], float("-inf")
    for i in order:
        if saving[i] > best_saving:
            front.append(i)
            best_saving = saving[i]
    return front[::-1]


@dataclass(frozen=True)
class Candidate:
    """One design point as the target search sees it."""

    index: int
    changes: dict[str, Any]
    speedup: float
    saving: float | None
    area_mm2: float

    def summary(self) -> dict[str, Any]:
        return {
            "point": self.index,
            "changes": self.changes,
            "speedup": self.speedup,
            "energy_saving": self.saving,
            "area_mm2": self.area_mm2,
        }


def smallest_change(
    candidates: Sequence[Candidate], speedup: float | None, saving: float | None
) -> Candidate | None:
    """The candidate reaching both targets (None: not asked) with the fewest changed
    parameters, then the smallest area; None if no candidate reaches them."""
    reached = [
        c
        for c in candidates
        if (speedup is None or c.speedup >= speedup)
        and (saving is None or (c.saving is not None and c.saving >= saving))
    ]
    return min(reached, key=lambda c: (len(c.changes), c.area_mm2), default=None)


def closest(candidates: Sequence[Candidate], speedup: float, saving: float | None) -> Candidate:
    """The candidate whose worse ratio to its target (speedup / target, saving / target) is
    largest: the nearest miss."""

    def score(c: Candidate) -> float:
        ratios = [c.speedup / speedup]
        if saving is not None and c.saving is not None:
            ratios.append(c.saving / saving)
        return min(ratios)

    return max(candidates, key=score)
