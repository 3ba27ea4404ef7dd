"""From a config to the objects of a run: problem, conditions, network, estimator."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from tqpinn.derivatives import make_estimator
from tqpinn.derivatives.base import Estimator
from tqpinn.errors import UserError
from tqpinn.nn.mlp import MLP, dense_factory
from tqpinn.nn.precision import apply_quant
from tqpinn.nn.tt.factory import tt_linear_factory
from tqpinn.pdes import get_problem
from tqpinn.pdes.base import Condition, Problem
from tqpinn.quant.spec import QuantSpec
from tqpinn.train.config import Config


def build_problem(config: Config) -> Problem:
    return get_problem(config.problem.name, **config.problem.options)


def build_model(config: Config, problem: Problem, spec: QuantSpec | None = None) -> nn.Module:
    """MLP input_dim -> widths -> 1 (dense or TT layers), quantized by ``spec`` (None: FP32;
    a run passes the one spec it built from ``config.quant``)."""
    sizes = [problem.input_dim, *config.model.widths, 1]
    tt = config.model.tt
    factory = dense_factory if tt is None else tt_linear_factory(len(sizes) - 1, tt.spec())
    model = MLP(sizes, activation=config.model.activation, linear_factory=factory)
    return apply_quant(model, spec)


def build_estimator(config: Config) -> Estimator:
    options = config.estimator.model_dump(exclude={"name"})
    return make_estimator(config.estimator.name, **options)


def resolve_conditions(config: Config, problem: Problem) -> tuple[Condition, ...]:
    """The problem's conditions with points and weights overridden by ``train.points/weights``."""
    conditions = problem.conditions()
    names = [c.name for c in conditions]
    overrides = {"points": config.train.points, "weights": config.train.weights}
    for section, given in overrides.items():
        for key in given:
            if key not in names:
                raise UserError(
                    f"config key 'train.{section}.{key}': problem {problem.name!r} has no "
                    f"condition {key!r}; its conditions are {names}"
                )
    return tuple(
        replace(
            c,
            points=config.train.points.get(c.name, c.points),
            weight=config.train.weights.get(c.name, c.weight),
        )
        for c in conditions
    )
