"""Which input columns an axis-wise estimator differentiates along, and how its first-order
results split into the spatial gradient and the time derivative."""

from __future__ import annotations

import torch

from tqpinn.derivatives.fields import DT, GRAD, LAP


def derivative_columns(needs: frozenset[str], n_space: int, dims: int) -> list[int]:
    """The input columns whose derivatives the fields ``needs`` take, spatial ones first: all
    n_space spatial columns for ∇u or Δu, then the time column(s) n_space..dims−1 for u_t."""
    spatial = list(range(n_space)) if needs & {GRAD, LAP} else []
    time = list(range(n_space, dims)) if DT in needs else []
    return spatial + time


def column_count(needs: frozenset[str], n_space: int, dims: int) -> int:
    """len(derivative_columns(...)) without listing them (the memory pre-flight sees any size)."""
    return n_space * bool(needs & {GRAD, LAP}) + (dims - n_space) * (DT in needs)


def split_first_order(
    first: torch.Tensor, needs: frozenset[str], n_space: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(∇u (N, n_space), u_t (N,)) from the derivatives ``first`` (N, C) along the columns of
    :func:`derivative_columns`; a field not in ``needs`` is None."""
    grad = first[:, :n_space] if GRAD in needs else None
    dt = first[:, -1] if DT in needs else None
    return grad, dt


def axes(columns: list[int], dims: int, like: torch.Tensor) -> torch.Tensor:
    """The unit vectors e_i of ``columns`` as rows (C, D), in ``like``'s dtype and device."""
    return torch.eye(dims, dtype=like.dtype, device=like.device)[columns]
