"""Validation of estimator options: errors name the option, the bad value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Real

from tqpinn.errors import UserError


def check_positive_int(key: str, value: object) -> int:
    """``value`` if it is an integer ≥ 1 (bools rejected), else a UserError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"estimator option {key!r} must be an integer >= 1, got {value!r}")
    return value


def check_positive_float(key: str, value: object) -> float:
    """``value`` if it is a finite real number > 0 (bools rejected), else a UserError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise UserError(f"estimator option {key!r} must be a finite number > 0, got {value!r}")
    return float(value)


def check_choice(key: str, value: object, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``, else a UserError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise UserError(f"estimator option {key!r} must be one of {sorted(choices)}, got {value!r}")
    return value
