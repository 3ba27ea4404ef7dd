"""The interface every derivative estimator implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from tqpinn.derivatives.fields import Fields


class Estimator(ABC):
    """Computes the requested derivative fields of a network's scalar output.

    The network maps (N, D) -> (N, 1); the first ``n_space`` input columns are spatial, the
    remaining D − n_space (0 or 1) are time. Results keep the autograd graph to the network's
    parameters, so a loss built from them back-propagates to the weights.
    """

    name: str

    @abstractmethod
    def fields(
        self,
        net: nn.Module,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None = None,
    ) -> Fields:
        """Fields of the network at x (N, D); ``generator`` drives any randomness."""

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
