"""Mean and spread of a metric over seeds, and when two variants differ by more than it.

Training noise between seeds is about ±40% of rel-L2 at the quick budget (issue 15), so a ratio
of two single runs says little; a difference is called only where the two variants' seed ranges
[min, max] do not overlap, which needs at least two seeds of each.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

MIN_SEEDS_FOR_SPREAD = 2
"""Seeds below which a sample standard deviation, and so a spread, is undefined."""


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``n``, ``mean``, ``min``, ``max`` and the sample standard deviation ``std`` (n - 1 in
    the denominator; None for one value) of ``values``."""
    enough = len(values) >= MIN_SEEDS_FOR_SPREAD
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "std": statistics.stdev(values) if enough else None,
    }


def outside_spread(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether spreads ``a`` and ``b`` (of :func:`spread`) have disjoint [min, max] ranges;
    None when either has too few seeds to tell."""
    if min(a["n"], b["n"]) < MIN_SEEDS_FOR_SPREAD:
        return None
    return a["min"] > b["max"] or a["max"] < b["min"]


def mean_and_std(s: dict[str, Any]) -> str:
    """A spread as table text: "1.234e-02 ± 5.6e-04 (3 seeds)", or "1.234e-02 (1 seed)"."""
    if s["std"] is None:
        return f"{s['mean']:.3e} ({s['n']} seed)"
    return f"{s['mean']:.3e} ± {s['std']:.1e} ({s['n']} seeds)"
