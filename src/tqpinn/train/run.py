"""A training run built from a config: what the config defines, each piece built once, and
the state that training changes."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from tqpinn.derivatives.base import Estimator
from tqpinn.devices import check_device
from tqpinn.pdes.base import Condition, Problem
from tqpinn.quant.spec import QuantSpec
from tqpinn.train.build import build_estimator, build_model, build_problem, resolve_conditions
from tqpinn.train.config import Config
from tqpinn.train.distributed import SINGLE_PROCESS, Shard, check_shares
from tqpinn.train.guard import DivergenceGuard
from tqpinn.train.limits import check_fits


@dataclass(frozen=True)
class Setup:
    """What a config defines, each built once per run: the problem, its conditions (points
    and weights as configured), the run's own quantization spec (None: FP32), the estimator."""

    config: Config
    problem: Problem
    conditions: tuple[Condition, ...]
    spec: QuantSpec | None
    estimator: Estimator


@dataclass(frozen=True)
class TestSet:
    """The fixed evaluation points x (T, input_dim) and the exact solution u (T,) or None."""

    x: torch.Tensor
    u: torch.Tensor | None


DEVICE_DIRECTIONS_SEED_OFFSET = 2_000_003
"""A device generator of directions is seeded apart from the sampling generator (same seed
on every rank of a data-parallel run, like the sampling)."""


@dataclass
class Run:
    """A built run: its setup; the network, optimizer and sampling generator that training
    changes; the device and test set; its data-parallel shard and divergence guard; the
    estimator's generator when it draws on the device."""

    setup: Setup
    net: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    test_set: TestSet
    shard: Shard = SINGLE_PROCESS
    guard: DivergenceGuard = field(default_factory=DivergenceGuard)
    device_directions: torch.Generator | None = None
    """The estimator's own generator on the run's device (Stein ``directions: device``); None:
    the estimator draws from ``generator``, like the sampling."""

    @property
    def estimator_generator(self) -> torch.Generator:
        """What the estimator draws its random directions from."""
        return self.generator if self.device_directions is None else self.device_directions

    @property
    def config(self) -> Config:
        return self.setup.config

    @property
    def problem(self) -> Problem:
        return self.setup.problem

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.setup.conditions

    @property
    def spec(self) -> QuantSpec | None:
        return self.setup.spec

    @property
    def estimator(self) -> Estimator:
        return self.setup.estimator

    @property
    def test_x(self) -> torch.Tensor:
        return self.test_set.x

    @property
    def test_u(self) -> torch.Tensor | None:
        return self.test_set.u

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @property
    def quant_generators(self) -> list[torch.Generator]:
        """The stochastic-rounding generator of the run's own spec (none for FP32): what a
        checkpoint saves so that a resumed run rounds as the original."""
        return [] if self.spec is None else [self.spec.generator]


def build_run(config: Config, device: str = "cpu", shard: Shard = SINGLE_PROCESS) -> Run:
    """Seeded construction: the same config always gives the same initial state (on every
    rank of a data-parallel run). The memory pre-flight sees the pieces before the network
    is allocated."""
    dev = torch.device(check_device(device))
    torch.manual_seed(config.seed)
    problem = build_problem(config)
    conditions = resolve_conditions(config, problem)
    spec = config.quant.build()
    check_fits(config, problem, conditions, spec, dev, rows_share=1 / shard.world)
    check_shares(shard, conditions)
    net = build_model(config, problem, spec).to(dev)
    setup = Setup(config, problem, conditions, spec, build_estimator(config))
    optimizer = torch.optim.Adam(net.parameters(), lr=config.train.lr)
    generator = torch.Generator().manual_seed(config.seed)
    test_x = problem.test_points(config.train.eval_points)
    test_u = problem.exact(test_x)
    test_set = TestSet(test_x.to(dev), None if test_u is None else test_u.to(dev))
    cfg = config.train
    guard = DivergenceGuard(
        cfg.on_nonfinite,
        cfg.rollback_lr_factor,
        cfg.nonfinite_patience,
        cfg.max_rollbacks,
        cfg.explode_factor,
    )
    directions = None
    if setup.estimator.draws_on_device:
        directions = torch.Generator(dev).manual_seed(config.seed + DEVICE_DIRECTIONS_SEED_OFFSET)
    return Run(setup, net, optimizer, generator, dev, test_set, shard, guard, directions)
