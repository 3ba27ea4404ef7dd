"""The PINN loss: a weighted sum of mean squared residuals, one term per condition."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tqpinn.derivatives.base import Estimator
from tqpinn.derivatives.fields import Fields, U
from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition, Problem


def solution_fields(
    problem: Problem,
    net: nn.Module,
    estimator: Estimator,
    x: torch.Tensor,
    needs: frozenset[str],
    generator: torch.Generator | None,
    rows: slice = slice(None),
) -> Fields:
    """Fields of the solution u (after any hard constraint) at ``x[rows]``, x (N, input_dim);
    randomness is drawn as for all N points (Estimator.fields_of_rows)."""
    f = estimator.fields_of_rows(net, x, rows, problem.network_needs(needs), problem.dim, generator)
    return problem.output_transform(x[rows], f)


def pinn_loss(
    problem: Problem,
    net: nn.Module,
    estimator: Estimator,
    conditions: tuple[Condition, ...],
    batch: dict[str, torch.Tensor],
    generator: torch.Generator | None,
    rows: Callable[[int], slice] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_c weight_c · mean(residual_c²) over the points in ``batch[c.name]``; also returns each
    unweighted term.

    ``rows`` (N -> the slice of N points this process owns; data parallelism) restricts the sums
    to those rows: Σ_{own rows} residual_c² / N_c, whose sum over the processes is the loss.
    """
    terms, total = {}, torch.zeros(())
    for cond in conditions:
        x = batch[cond.name]
        own = slice(None) if rows is None else rows(x.shape[0])
        fields = solution_fields(problem, net, estimator, x, cond.needs, generator, own)
        residual = cond.residual(x[own], fields)
        _check_shape(problem, cond, residual, x[own].shape[0])
        terms[cond.name] = residual.square().sum() / x.shape[0]
        total = total + cond.weight * terms[cond.name]
    return total, terms


def _check_shape(problem: Problem, cond: Condition, residual: object, n: int) -> None:
    """A residual of n points must be (n,): a (n, n) broadcast would train on a wrong loss
    without any error. Checked every step (shapes only, no synchronisation); its values are
    the divergence guard's business."""
    if isinstance(residual, torch.Tensor) and tuple(residual.shape) == (n,):
        return
    got = tuple(residual.shape) if isinstance(residual, torch.Tensor) else type(residual).__name__
    raise UserError(
        f"problem {problem.name!r}: the residual of condition {cond.name!r} returned {got} for "
        f"{n} points; expected shape ({n},)"
    )


@torch.no_grad()
def predict(
    problem: Problem,
    net: nn.Module,
    estimator: Estimator,
    x: torch.Tensor,
    generator: torch.Generator | None,
    chunk: int = 512,
) -> torch.Tensor:
    """The solution u at x (N, input_dim) -> (N,), in chunks: a smoothed Stein value costs 2K+1
    network rows per point."""
    parts = [
        solution_fields(problem, net, estimator, xc, frozenset({U}), generator).u
        for xc in x.split(chunk)
    ]
    return torch.cat(parts)
