"""The registered problems, and building a problem (registered or user-defined) by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from tqpinn.errors import UserError
from tqpinn.pdes.base import Problem
from tqpinn.pdes.check import check_problem
from tqpinn.pdes.heat import Heat
from tqpinn.pdes.hjb import HJB
from tqpinn.pdes.loader import describe_exception, is_object_reference, load_object
from tqpinn.pdes.poisson import Poisson

PROBLEMS: dict[str, type[Problem]] = {cls.name: cls for cls in (Poisson, Heat, HJB)}


def get_problem(name: str, **options: Any) -> Problem:
    """Build a problem from a registered name or a "module:Object" / "file.py:Object" reference.

    The object is a Problem subclass or a factory returning a Problem; ``options`` are its
    keyword arguments. Unknown names, missing files, bad options, an exception while building
    it and a user-defined problem that breaks the interface (tqpinn.pdes.check) raise UserError.
    """
    if is_object_reference(name):
        factory = load_object(name)
        if not callable(factory):
            raise UserError(
                f"problem {name!r} is a {type(factory).__name__}; expected a Problem subclass "
                "or a function returning a Problem"
            )
    elif name in PROBLEMS:
        factory = PROBLEMS[name]
    else:
        raise UserError(
            f"unknown problem {name!r}; choose from {sorted(PROBLEMS)} "
            "or give 'pkg.module:Object' / 'path/to/file.py:Object'"
        )
    if inspect.isabstract(factory):
        raise UserError(f"problem {name!r} is an abstract class; name a concrete Problem subclass")
    _check_options(name, factory, options)
    try:
        problem = factory(**options)
    except UserError:
        raise
    except Exception as err:
        raise UserError(
            f"problem {name!r} failed to build: {describe_exception(err, _source_file(factory))}"
        ) from None
    if not isinstance(problem, Problem):
        raise UserError(
            f"problem {name!r} returned a {type(problem).__name__}, not a tqpinn.pdes.Problem"
        )
    if is_object_reference(name):  # the registered ones pass tests/test_pdes_contract.py
        check_problem(problem, name)
    return problem


def _source_file(factory: Callable[..., object]) -> str | None:
    """The file defining ``factory``, whose lines name where building it failed."""
    try:
        return inspect.getsourcefile(factory)
    except TypeError:
        return None


def option_defaults(factory: Callable[..., object]) -> dict[str, Any]:
    """The keyword options of a problem class or factory, with their defaults (None if none)."""
    return {
        p.name: None if p.default is inspect.Parameter.empty else p.default
        for p in inspect.signature(factory).parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _check_options(name: str, factory: Callable[..., object], options: dict[str, Any]) -> None:
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        valid = ", ".join(f"{k}={v!r}" for k, v in option_defaults(factory).items()) or "none"
        raise UserError(f"problem {name!r}: bad options {options}: {err}; valid: {valid}") from None
