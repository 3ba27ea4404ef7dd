"""The interface checks a problem passes when it is built, so that a user-defined problem that
breaks the contract fails in one line naming the attribute, condition or field, before training
(not with a traceback, nor by training silently on a broadcast residual).

Checked on a few probe points drawn by a generator of its own (the global RNG is forked, so a
run's random streams are untouched): ``dim`` is a positive integer and ``time_dependent`` a
bool; ``conditions()`` gives Conditions with known field names; every sampler returns finite
floating-point points (n, input_dim); ``exact`` returns None or finite values (n,); every
residual returns (n,) and reads only the fields its condition ``needs`` (the others are None in
training, whatever the estimator).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tqpinn.derivatives.fields import FIELD_NAMES, Fields
from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition, Problem
from tqpinn.pdes.loader import describe_exception

PROBE_POINTS = 5
"""Odd and above 1: a residual that broadcasts to (n, n) or keeps a (n, 1) column is caught."""
PROBE_SEED = 0


class _UnrequestedField(Exception):
    """A residual read a field its condition does not request."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


@dataclass(frozen=True)
class _ProbeFields(Fields):
    """Fields whose unrequested entries raise on access instead of being None."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in FIELD_NAMES and value is None:
            raise _UnrequestedField(name)
        return value


def check_problem(problem: Problem, name: str) -> None:
    """UserError (one line, naming ``name`` and what is wrong) unless ``problem`` keeps the
    interface of :class:`tqpinn.pdes.Problem` on a few probe points."""
    _check_attributes(problem, name)
    conditions = _call(name, "conditions()", problem.conditions)
    if not isinstance(conditions, tuple | list) or not conditions:
        raise UserError(
            f"problem {name!r}: conditions() must return a non-empty tuple of Conditions"
        )
    for cond in conditions:
        if not isinstance(cond, Condition):
            raise UserError(
                f"problem {name!r}: conditions() holds a {type(cond).__name__}, not a Condition"
            )
        unknown = set(cond.needs) - FIELD_NAMES
        if unknown:
            raise UserError(
                f"problem {name!r}: condition {cond.name!r} needs unknown fields "
                f"{sorted(unknown)}; choose from {sorted(FIELD_NAMES)}"
            )
    generator = torch.Generator().manual_seed(PROBE_SEED)
    # Samplers, then the exact solution, then the residuals that may use both: the first
    # error named is the cause. The global RNG is forked for samplers that draw from it.
    with torch.random.fork_rng(devices=[]):
        points = []
        for cond in conditions:
            what = f"the sampler of condition {cond.name!r}"
            x = _call(name, what, cond.sample, PROBE_POINTS, generator)
            _check_values(name, what, x, (PROBE_POINTS, problem.input_dim), finite=True)
            points.append(x)
        exact = _call(name, "exact()", problem.exact, points[0])
        if exact is not None:
            _check_values(name, "exact()", exact, (PROBE_POINTS,), finite=True)
        for cond, x in zip(conditions, points, strict=True):
            _check_residual(problem, name, cond, x, generator)


def _check_attributes(problem: Problem, name: str) -> None:
    try:
        label, dim, time_dependent = problem.name, problem.dim, problem.time_dependent
    except AttributeError as err:
        raise UserError(
            f"problem {name!r} ({type(problem).__name__}) has no attribute {err.name!r}: set "
            f"self.{err.name} in __init__ or as a class attribute (docs/problems.md)"
        ) from None
    if not isinstance(label, str) or not label:
        raise UserError(f"problem {name!r}: name must be a non-empty string, got {label!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UserError(f"problem {name!r}: dim must be a positive integer, got {dim!r}")
    if not isinstance(time_dependent, bool):
        raise UserError(
            f"problem {name!r}: time_dependent must be True or False, got {time_dependent!r}"
        )


def _call(name: str, what: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, its exceptions as one line naming ``what`` and the user's line."""
    try:
        return function(*args)
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"problem {name!r}: {what} failed: {describe_exception(err)}") from None


def _check_values(
    name: str, what: str, values: object, shape: tuple[int, ...], finite: bool
) -> None:
    if not isinstance(values, torch.Tensor):
        got = f"a {type(values).__name__}"
    elif not values.is_floating_point() or tuple(values.shape) != shape:
        got = f"{values.dtype} of shape {tuple(values.shape)}"
    elif finite and not bool(torch.isfinite(values).all()):
        got = "values holding NaN or Inf"
    else:
        return
    n = shape[0]
    expected = f"({n},)" if len(shape) == 1 else f"({n}, {shape[1]})"
    raise UserError(
        f"problem {name!r}: {what} returned {got} for {n} points; expected finite "
        f"floating-point values of shape {expected}"
    )


def _check_residual(
    problem: Problem, name: str, cond: Condition, x: torch.Tensor, generator: torch.Generator
) -> None:
    """Call the residual on probe values of exactly the fields it needs."""
    n, dim = x.shape[0], problem.dim
    shapes = {"u": (n,), "grad": (n, dim), "lap": (n,), "dt": (n,)}
    given = {
        f: torch.randn(shapes[f], generator=generator, dtype=x.dtype) for f in sorted(cond.needs)
    }
    what = f"the residual of condition {cond.name!r}"
    try:
        residual = cond.residual(x, _ProbeFields(**given))
    except _UnrequestedField as err:
        raise UserError(
            f"problem {name!r}: {what} reads field {err.field!r}, which is not in its needs "
            f"{sorted(cond.needs)}; add {err.field!r} to the Condition's needs (unrequested "
            "fields are None in training)"
        ) from None
    except UserError:
        raise
    except Exception as err:
        raise UserError(
            f"problem {name!r}: {what} failed on {n} probe points: {describe_exception(err)}"
        ) from None
    _check_values(name, what, residual, (n,), finite=False)
