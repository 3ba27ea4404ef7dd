"""Derivative fields of a scalar function of (x, t), and the names used to request them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

U, GRAD, LAP, DT = "u", "grad", "lap", "dt"
FIELD_NAMES = frozenset({U, GRAD, LAP, DT})


@dataclass(frozen=True)
class Fields:
    """Values at N points; a field that was not requested is None.

    u: (N,) value; grad: (N, d) spatial gradient; lap: (N,) spatial Laplacian;
    dt: (N,) time derivative (time-dependent problems only).
    """

    u: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    lap: torch.Tensor | None = None
    dt: torch.Tensor | None = None


def check_needs(needs: frozenset[str], n_time: int) -> None:
    """Reject unknown field names, and ``dt`` for a problem without time."""
    unknown = needs - FIELD_NAMES
    if unknown:
        raise ValueError(
            f"unknown derivative fields {sorted(unknown)}; choose from {sorted(FIELD_NAMES)}"
        )
    if DT in needs and n_time == 0:
        raise ValueError("field 'dt' requested for a problem without a time coordinate")
