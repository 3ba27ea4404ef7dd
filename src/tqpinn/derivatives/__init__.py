"""Derivative estimators behind one interface, and their registry."""

from __future__ import annotations

import dataclasses

from tqpinn.derivatives.autodiff import Autodiff
from tqpinn.derivatives.base import Estimator
from tqpinn.derivatives.fields import DT, FIELD_NAMES, GRAD, LAP, Fields, U
from tqpinn.derivatives.stein import Stein
from tqpinn.derivatives.stencil import Stencil
from tqpinn.derivatives.taylor import Taylor
from tqpinn.errors import UserError

ESTIMATORS: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (Autodiff, Stein, Stencil, Taylor)
}


def make_estimator(name: str, **options: object) -> Estimator:
    """The estimator registered as ``name``, built with ``options`` (e.g. sigma=0.01, pairs=512).

    Unknown names, unknown options and invalid values raise :class:`UserError`.
    """
    if name not in ESTIMATORS:
        raise UserError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}")
    cls = ESTIMATORS[name]
    valid = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UserError(
            f"unknown option(s) {unknown} for estimator {name!r}; valid options: {valid}"
        )
    return cls(**options)


__all__ = [
    "DT",
    "ESTIMATORS",
    "FIELD_NAMES",
    "GRAD",
    "LAP",
    "Autodiff",
    "Estimator",
    "Fields",
    "Stein",
    "Stencil",
    "Taylor",
    "U",
    "make_estimator",
]
