"""Data parallelism with torch.distributed: each rank computes its share of every batch.

Sampling. Every rank draws the *global* batch (collocation points, then Stein perturbations)
from the run's generator, which is seeded identically on all ranks, and keeps a contiguous
slice of the rows (:meth:`Shard.rows`; perturbations via ``Estimator.fields_of_rows``). So W
ranks with a global batch of N points evaluate exactly the per-point terms that one process
evaluates with N points, and their generators stay in step.

Loss. Each condition's term on a rank is Σ_{its rows} r² / N, not a per-rank mean: summing the
per-rank gradients (an all-reduce SUM) then gives the gradient of the global mean whatever the
split, equal or not. Only the order in which the per-point terms are added differs from one
process, so W ranks match one process to FP32 reduction-order rounding.

Why not ``DistributedDataParallel``: its reducer expects one forward through the wrapper per
backward, while an estimator calls the network several times a step (once per condition,
with a stream bundle for DiffQuant, and autodiff differentiates w.r.t. the inputs with
``create_graph``). One flat all-reduce of the gradients after ``backward`` does the same
arithmetic with none of those constraints; for PINN-sized models it is one small message.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tqpinn.derivatives.base import Estimator
from tqpinn.devices import check_device
from tqpinn.errors import UserError
from tqpinn.pdes.base import Condition, Problem
from tqpinn.train.loss import pinn_loss

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What ``torchrun`` sets for every worker."""
_GROUPS = itertools.count()


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel run: rank in 0..world-1."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 evaluates and writes every output (metrics, plots, checkpoints)."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of n rows; shares differ by at most one row."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)


SINGLE_PROCESS = Shard()


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} is not an integer") from None


@contextlib.contextmanager
def data_parallel(device: str = "cpu") -> Iterator[Shard]:
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1), or a single process.

    Backend: gloo on CPU, NCCL on CUDA (one GPU per rank, LOCAL_RANK). The group is destroyed
    on exit, also when the run fails.
    """
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") == 1:
        yield SINGLE_PROCESS
        return
    missing = [v for v in LAUNCH_VARIABLES if v not in os.environ]
    if missing:
        raise UserError(
            f"WORLD_SIZE is set but {missing} are not: launch data-parallel runs with "
            "torchrun --nproc-per-node N -m tqpinn train ..."
        )
    backend = "gloo"
    if torch.device(check_device(device)).type == "cuda":
        torch.cuda.set_device(_env_int("LOCAL_RANK"))
        backend = "nccl"
    store, rank, world = next(dist.rendezvous("env://"))
    # The launcher's store outlives a process group: each group of the launch gets its own
    # keys, or a later group could read an earlier one's (closed) addresses and fail.
    store = dist.PrefixStore(f"tqpinn_group_{next(_GROUPS)}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    try:
        yield Shard(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def check_shares(shard: Shard, conditions: Iterable[Condition]) -> None:
    """Every rank needs at least one point of every condition (UserError naming the key)."""
    for cond in conditions:
        if cond.points < shard.world:
            raise UserError(
                f"config key 'train.points.{cond.name}': {cond.points} points cannot be split "
                f"over {shard.world} ranks; use at least {shard.world}"
            )


def shard_loss(
    shard: Shard,
    problem: Problem,
    net: nn.Module,
    estimator: Estimator,
    conditions: tuple[Condition, ...],
    batch: dict[str, torch.Tensor],
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This rank's part of :func:`tqpinn.train.loss.pinn_loss` for the global ``batch``.

    Returns Σ_c weight_c · Σ_{own rows} r_c² / N_c and each unweighted Σ_{own rows} r_c² / N_c:
    the sums over ranks are the global loss and terms. One process: exactly ``pinn_loss``.
    """
    rows = None if shard.world == 1 else shard.rows
    return pinn_loss(problem, net, estimator, conditions, batch, generator, rows)


def sum_over_ranks(
    shard: Shard, values: torch.Tensor, params: Iterable[nn.Parameter]
) -> torch.Tensor:
    """All-reduce (SUM) the gradients of ``params`` in place, and ``values`` (1-D, e.g. the loss
    terms) along with them in the same message; returns the summed ``values``.

    A parameter without a gradient on this rank contributes zeros. One process: no-op.
    """
    if shard.world == 1:
        return values
    params = list(params)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    flat = torch.cat([values.detach().reshape(-1).to(grads[0]), *(g.reshape(-1) for g in grads)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = values.numel()
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    return flat[: values.numel()].to(values)
