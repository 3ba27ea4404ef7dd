"""Checks for problem options: a bad value raises a UserError naming the problem and the option."""

from __future__ import annotations

from tqpinn.errors import UserError


def check_dim(problem: str, dim: object) -> int:
    """``dim`` as an int >= 1."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UserError(f"problem {problem!r}: option 'dim' must be an integer >= 1, got {dim!r}")
    return dim


def check_bool(problem: str, key: str, value: object) -> bool:
    """``value`` as a bool (true or false, nothing else)."""
    if not isinstance(value, bool):
        raise UserError(f"problem {problem!r}: option {key!r} must be true or false, got {value!r}")
    return value


def check_positive(problem: str, key: str, value: object) -> float:
    """``value`` as a float > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"problem {problem!r}: option {key!r} must be a number > 0, got {value!r}")
    return float(value)
