"""Per problem and budget: the FP32 Stein dense config every variant starts from, and its TT layers.

"paper": the prior recipes of PAPER_NOTES.md section 7 (the configs/*_fp32_se.yaml files), with
the TT layers of configs/*_smx_se_tt.yaml. "quick": the same problems, conditions and loss
weights on smaller networks, fewer pairs and steps, sized so that all 24 runs of the three
problems finish in under 30 minutes on 2 CPU cores (docs/results.md gives the measured time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tqpinn.errors import UserError


@dataclass(frozen=True)
class Recipe:
    """title: what the table calls the problem; base: the FP32-SE dense config (plain data);
    tt: the ``model.tt`` section of the TT variants without its plan (``groups``: PRS groups)."""

    title: str
    base: dict[str, Any]
    tt: dict[str, Any] = field(default_factory=dict)


def _config(
    problem: dict[str, Any],
    widths: list[int],
    activation: str,
    pairs: int,
    steps: int,
    points: dict[str, int],
    weights: dict[str, float],
    eval_every: int,
    eval_points: int,
) -> dict[str, Any]:
    return {
        "seed": 0,
        "problem": problem,
        "model": {"widths": widths, "activation": activation},
        "estimator": {"name": "stein", "sigma": 0.01, "pairs": pairs, "value": "center"},
        "quant": "fp32",
        "train": {
            "steps": steps,
            "lr": 1.0e-3,
            "schedule": "linear",
            "points": points,
            "weights": weights,
            "log_every": 10,
            "eval_every": eval_every,
            "eval_points": eval_points,
            # Checkpoints as often as evaluations: a killed reproduce loses little.
            "checkpoint_every": eval_every,
        },
    }


POISSON = {"name": "poisson", "options": {"dim": 2}}
POISSON_POINTS = {"interior": 100, "boundary": 100}
POISSON_WEIGHTS = {"interior": 1.0, "boundary": 300.0}
HEAT = {"name": "heat", "options": {"dim": 100}}
HEAT_POINTS = {"interior": 50, "initial": 50, "boundary": 50}
HEAT_WEIGHTS = {"interior": 1.0, "initial": 1000.0, "boundary": 1000.0}
HJB = {"name": "hjb", "options": {"dim": 20, "hard_constraint": True}}
HJB_POINTS = {"interior": 100}
# The prior TT-PINN layers of HJB-20D (PAPER_NOTES.md section 5): 21 = 1·1·3·7 → 512 = 8·4·4·4
# and 512 = 4·4·4·8 → 8·4·4·4, rank 2; PRS merges the four cores into two groups.
HJB_TT_PAPER = {
    "layers": [0, 1],
    "ranks": 2,
    "shapes": [[[8, 4, 4, 4], [1, 1, 3, 7]], [[8, 4, 4, 4], [4, 4, 4, 8]]],
    "groups": 2,
}

# Poisson and Heat: the two hidden 256x256 layers, 256 = 8·8·4 x 4·8·8 (the automatic factors),
# rank 4, Xavier variance; PRS merges the three cores into groups of 2 + 1.
TT_HIDDEN_PAPER = {"layers": [1, 2], "ranks": 4, "init": "xavier", "groups": 2}

# Quick Poisson and Heat (width 64): the middle hidden layer only, 64 = 4·4·4 x 4·4·4, rank 4,
# Xavier variance, PRS groups 2 + 1. With both hidden layers TT at this width, FP32 Stein
# training reached 1.8x the dense error on Heat-100D in 500 steps (one layer: 0.8x); see
# docs/results.md.
TT_MIDDLE_QUICK = {
    "layers": [1],
    "ranks": 4,
    "shapes": [[[4, 4, 4], [4, 4, 4]]],
    "init": "xavier",
    "groups": 2,
}

RECIPES: dict[str, dict[str, Recipe]] = {
    "paper": {
        "poisson2d": Recipe(
            "Poisson 2-D",
            _config(
                POISSON, [256] * 3, "tanh", 512, 1000, POISSON_POINTS, POISSON_WEIGHTS, 100, 20_000
            ),
            TT_HIDDEN_PAPER,
        ),
        "hjb20d": Recipe(
            "HJB 20-D",
            _config(HJB, [512] * 2, "sin", 1024, 10_000, HJB_POINTS, {}, 500, 10_000),
            HJB_TT_PAPER,
        ),
        "heat100d": Recipe(
            "Heat 100-D",
            _config(HEAT, [256] * 3, "tanh", 1024, 1000, HEAT_POINTS, HEAT_WEIGHTS, 100, 10_000),
            TT_HIDDEN_PAPER,
        ),
    },
    "quick": {
        "poisson2d": Recipe(
            "Poisson 2-D",
            _config(
                POISSON, [64] * 3, "tanh", 64, 500, POISSON_POINTS, POISSON_WEIGHTS, 50, 20_000
            ),
            TT_MIDDLE_QUICK,
        ),
        "hjb20d": Recipe(
            "HJB 20-D",
            _config(HJB, [128] * 2, "sin", 64, 500, HJB_POINTS, {}, 50, 10_000),
            {"layers": [0, 1], "ranks": 2, "groups": 2},
        ),
        "heat100d": Recipe(
            "Heat 100-D",
            _config(HEAT, [64] * 3, "tanh", 64, 500, HEAT_POINTS, HEAT_WEIGHTS, 50, 10_000),
            TT_MIDDLE_QUICK,
        ),
    },
}
"""budget -> problem key -> recipe."""

BUDGETS = tuple(RECIPES)
PROBLEMS = tuple(RECIPES["quick"])


def recipe(budget: str, problem: str) -> Recipe:
    """The recipe of ``problem`` at ``budget``; unknown names raise UserError."""
    if budget not in RECIPES:
        raise UserError(f"unknown budget {budget!r}; choose from {list(BUDGETS)}")
    if problem not in RECIPES[budget]:
        raise UserError(f"unknown problem {problem!r}; choose from {list(PROBLEMS)}")
    return RECIPES[budget][problem]
