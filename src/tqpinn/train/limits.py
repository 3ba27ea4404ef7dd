"""Refuse a run that cannot fit in memory, before anything is allocated.

A lower bound on the memory of one training process, in bytes (D input columns, P parameters,
N_c points of condition c on this rank, K Stein pairs, C_c input columns whose derivatives
condition c needs, W = Σ hidden widths):

    16·P                     parameters, gradients and Adam's two moments, FP32
  + Σ_c R_c · W · s          hidden activations kept for backward: R_c = 2K·N_c rows where
                             Stein evaluates x ± δ (derivatives, or a smoothed value);
                             (2C_c + 1)·N_c for the stencil's x and x ± h·e_i; (1 + C_c + 1)·N_c
                             for Taylor streams (value, C_c first-order terms, the collapsed
                             second-order term when Δu is needed; 1 + C_c without); d·N_c for
                             an autodiff Laplacian in d dimensions (each direction's second-order
                             pass keeps its own graph); else N_c; s = 4 B, or the stored width
                             of the fwd.input format when activations are stored packed
  + Σ_c E_c · N_c · D · s    the extra input rows kept by the first layer for backward: Stein's
                             E_c = 2K perturbed inputs x ± δ (or DiffQuant's two difference
                             streams), the stencil's 2C_c, Taylor's C_c (+ 1 with Δu) streams
  + T · D · 4                the fixed test set of T points

Every term is a tensor that must exist at the step's peak, so a run whose bound exceeds the
memory of the device is refused with the key that dominates. What a step really adds is larger
(benchmarks/bench_memory.py, docs/scaling.md): 1.7-2.2 times the per-step terms for Stein,
6-9 times for autodiff once they dominate; passing this check does not promise a fit.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

from tqpinn.derivatives.columns import column_count
from tqpinn.derivatives.fields import DT, GRAD, LAP, U
from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition, Problem
from tqpinn.quant.spec import QuantSpec
from tqpinn.train.build import build_model, build_problem, resolve_conditions
from tqpinn.train.config import Config


@dataclass(frozen=True)
class MemoryTerm:
    """One term of the bound: its part of memory, bytes, and the config keys that set it."""

    part: str
    bytes: float
    keys: str


CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2: a byte count or "max"
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # v1: a huge number when unlimited
)


def device_memory(device: torch.device) -> int:
    """Bytes of memory of ``device``: the GPU's, or on the CPU what this process may use: the
    smallest of the physical RAM, its address-space limit (``ulimit -v``) and its cgroup's
    memory limit (a container's)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    limits = [physical_ram(), address_space_limit(), cgroup_limit()]
    return min(b for b in limits if b is not None)


def physical_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def address_space_limit() -> int | None:
    """The soft RLIMIT_AS in bytes, None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2, else v1) in bytes, None when unlimited
    or unreadable."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None
    return None


def memory_terms(config: Config, rows_share: float = 1.0) -> list[MemoryTerm]:
    """The terms of the lower bound (module docstring) for one process holding ``rows_share``
    of every batch: the model's first, then the data's. Builds what it needs from ``config``;
    a run passes its own pieces to :func:`check_fits` instead."""
    problem = build_problem(config)
    conditions = resolve_conditions(config, problem)
    spec = config.quant.build()
    return [model_term(config, problem), *data_terms(config, problem, conditions, spec, rows_share)]


def model_term(config: Config, problem: Problem) -> MemoryTerm:
    """Parameters and Adam state; the model is built on the meta device (exact, no storage)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # the run's seed untouched
        n_params = sum(p.numel() for p in build_model(config, problem).parameters())
    keys = f"model.widths={config.model.widths} with {_dim_key(problem)}"
    return MemoryTerm("model", 16.0 * n_params, f"{keys}: {n_params:.3g} parameters")


def data_terms(
    config: Config,
    problem: Problem,
    conditions: tuple[Condition, ...],
    spec: QuantSpec | None,
    rows_share: float = 1.0,
) -> list[MemoryTerm]:
    """Activations, perturbations and test set of a run built from ``config``: its problem,
    its conditions (points overridden by the config) and its quantization spec."""
    dims = problem.input_dim
    stored = 4.0
    if spec is not None and spec.store_activations and spec.fwd_input.fmt is not None:
        stored = spec.fwd_input.fmt.bits / 8
    rows = extra_inputs = 0.0  # network rows of a step; input rows beyond the points
    for cond in conditions:
        points = cond.points * rows_share
        needs = problem.network_needs(cond.needs)
        cond_rows, cond_extra = _rows_per_point(config, problem, needs)
        rows += cond_rows * points
        extra_inputs += cond_extra * points
    test_points = config.train.eval_points or problem.test_size
    largest = max(conditions, key=lambda c: c.points).name
    per_step = f"train.points.{largest}" + ROWS_KEYS.get(config.estimator.name, "")
    dim_key = _dim_key(problem)
    return [
        MemoryTerm(
            "activations",
            rows * sum(config.model.widths) * stored,
            f"{per_step} x model.widths={config.model.widths}: {rows:.3g} rows",
        ),
        MemoryTerm("perturbations", extra_inputs * dims * stored, f"{per_step} x {dim_key}"),
        MemoryTerm(
            "test set", test_points * dims * 4.0, f"train.eval_points={test_points} x {dim_key}"
        ),
    ]


ROWS_KEYS = {
    "stein": " x estimator.pairs",
    "stencil": " x input columns",
    "taylor": " x input columns",
}
"""What multiplies the points in the rows of a step, by estimator (autodiff: nothing)."""


def _rows_per_point(config: Config, problem: Problem, needs: frozenset[str]) -> tuple[int, int]:
    """(network rows, extra input rows) per point of a condition whose network needs ``needs``
    (module docstring)."""
    estimator = config.estimator
    derivatives = bool(needs & {GRAD, LAP, DT})
    columns = column_count(needs, problem.dim, problem.input_dim)
    if estimator.name == "stein":
        smoothed = U in needs and estimator.value == "smoothed"
        return (2 * estimator.pairs,) * 2 if derivatives or smoothed else (1, 0)
    if estimator.name == "stencil" and derivatives:
        return 2 * columns + 1, 2 * columns
    if estimator.name == "taylor" and derivatives:
        second = int(LAP in needs)
        return 1 + columns + second, columns + second
    if estimator.name == "autodiff" and LAP in needs:
        return problem.dim, 0  # one second-order graph per direction
    return 1, 0


def _dim_key(problem: Problem) -> str:
    return f"problem.options.dim (input columns {problem.input_dim})"


def check_fits(
    config: Config,
    problem: Problem,
    conditions: tuple[Condition, ...],
    spec: QuantSpec | None,
    device: torch.device,
    rows_share: float = 1.0,
) -> None:
    """UserError naming the dominant keys when the lower bound exceeds the device memory; takes
    the run's built pieces, and counts the model's parameters on the meta device."""
    have = device_memory(device)
    data = data_terms(config, problem, conditions, spec, rows_share)
    # The data terms first: they grow with every width and input size, so a model too large
    # to describe even on the meta device (over 2^63 elements) is refused before it is built.
    _refuse_above(data, have, device)
    _refuse_above([model_term(config, problem), *data], have, device)


def _refuse_above(terms: list[MemoryTerm], have: int, device: torch.device) -> None:
    need = sum(t.bytes for t in terms)
    if need > have:
        top = max(terms, key=lambda t: t.bytes)
        raise UserError(
            f"this run needs at least {need / 2**30:.3g} GiB per process but the {device.type} "
            f"device has {have / 2**30:.3g} GiB; the largest part, {top.bytes / 2**30:.3g} GiB, "
            f"comes from {top.keys} (limits: docs/scaling.md)"
        )
