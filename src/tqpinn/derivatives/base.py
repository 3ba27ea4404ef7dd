"""The interface every derivative estimator implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import nn

from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U, check_needs

Network = Callable[[torch.Tensor], torch.Tensor]
DERIVATIVES = frozenset({GRAD, LAP, DT})
"""The fields that need more than one plain forward pass."""


def scalar_output(y: torch.Tensor, rows: int) -> torch.Tensor:
    """A network output of shape (rows, 1) or (rows,) as (rows,)."""
    if y.shape not in {(rows, 1), (rows,)}:
        raise ValueError(f"the network must map (N, D) to (N, 1); got output {tuple(y.shape)}")
    return y.reshape(rows)


class Estimator(ABC):
    """Computes the requested derivative fields of a network's scalar output.

    The network maps (N, D) -> (N, 1); the first ``n_space`` input columns are spatial, the
    remaining D − n_space (0 or 1) are time. Results keep the autograd graph to the network's
    parameters, so a loss built from them back-propagates to the weights.
    """

    name: str

    def fields(
        self,
        net: nn.Module,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None = None,
    ) -> Fields:
        """Fields of the network at x (N, D); ``generator`` drives any randomness. When one plain
        forward pass suffices (:meth:`one_forward_suffices`) that is all it costs; otherwise the
        estimator's :meth:`estimated_fields`."""
        n, dims = x.shape
        check_needs(needs, dims - n_space)
        if self.one_forward_suffices(needs):
            return Fields(u=scalar_output(net(x), n) if U in needs else None)
        return self.estimated_fields(net, x, needs, n_space, generator)

    @property
    def draws_on_device(self) -> bool:
        """Whether the trainer should hand :meth:`fields` a generator on the run's device
        (instead of its CPU sampling generator). Only an estimator that draws says yes."""
        return False

    def one_forward_suffices(self, needs: frozenset[str]) -> bool:
        """Whether ``needs`` asks for nothing but the network's value at the points."""
        return not needs & DERIVATIVES

    @abstractmethod
    def estimated_fields(
        self,
        net: nn.Module,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None,
    ) -> Fields:
        """:meth:`fields` when one plain forward pass does not suffice (``needs`` checked)."""

    def fields_of_rows(
        self,
        net: nn.Module,
        x: torch.Tensor,
        rows: slice,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None = None,
    ) -> Fields:
        """Fields at the points ``x[rows]`` only, drawing any randomness as ``fields`` would for
        all N points of x: a data-parallel shard (tqpinn.train.distributed) then gets exactly
        the numbers that one process computing the whole batch gets for those rows.

        Estimators that draw nothing evaluate x[rows]; a random one overrides this.
        """
        return self.fields(net, x[rows], needs, n_space, generator)
