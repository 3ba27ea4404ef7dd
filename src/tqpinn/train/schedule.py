"""Learning-rate schedules as pure functions of the step (nothing to checkpoint)."""

from __future__ import annotations

import math
from collections.abc import Callable

SCHEDULES: dict[str, Callable[[float], float]] = {
    "linear": lambda frac: 1.0 - frac,  # the prior recipe: linear decay to 0
    "cosine": lambda frac: 0.5 * (1.0 + math.cos(math.pi * frac)),
    "constant": lambda frac: 1.0,
}


def learning_rate(base_lr: float, schedule: str, step: int, total_steps: int) -> float:
    """Learning rate used for update number ``step`` (0-based) of ``total_steps``."""
    return base_lr * SCHEDULES[schedule](step / total_steps)
