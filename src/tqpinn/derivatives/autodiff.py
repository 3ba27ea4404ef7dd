"""Exact derivatives by reverse-mode autograd with respect to the network's inputs.

Only ``torch.autograd.grad`` is used (no ``torch.func`` transforms), because the GEMMs of a model
run through custom autograd Functions in :mod:`tqpinn.qops` that support double backward but not
necessarily vmap or forward mode.

The Laplacian needs one second-order reverse pass per spatial direction. Directions are processed
``directions_per_pass`` at a time: the N points are replicated c times, copy j is differentiated
along its own direction, and one backward pass over the c·N rows yields c Hessian diagonals.
c = 1 is a loop of d passes; c = d is one pass over d·N rows that repeats the first-order work d
times. A middle value is fastest on CPU (docs/estimators.md has the measurements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from tqpinn.derivatives.base import Estimator, Network, scalar_output
from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U
from tqpinn.derivatives.options import check_positive_int


@dataclass(frozen=True)
class Autodiff(Estimator):
    """u, ∇u, Δu, u_t of the network itself, exact up to rounding.

    directions_per_pass: spatial directions whose second derivatives share one backward pass.
    """

    name: ClassVar[str] = "autodiff"
    directions_per_pass: int = 10

    def __post_init__(self) -> None:
        check_positive_int("directions_per_pass", self.directions_per_pass)

    def estimated_fields(
        self,
        net: Network,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None,
    ) -> Fields:
        n, dims = x.shape
        # Under no_grad (evaluation) the input derivatives still need a graph; the parameters'
        # graph is kept only when the caller records one.
        keep_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            copies = max(1, min(self.directions_per_pass, n_space)) if LAP in needs else 1
            xs = x.detach().expand(copies, n, dims).clone().requires_grad_(True)
            u = scalar_output(net(xs.reshape(copies * n, dims)), copies * n)
            grad_all = torch.autograd.grad(u.sum(), xs, create_graph=True)[0]  # (c, N, D)
            lap = self._laplacian(grad_all, xs, n_space) if LAP in needs else None
        out = {
            U: u[:n],
            GRAD: grad_all[0, :, :n_space],
            DT: grad_all[0, :, n_space:].reshape(n) if DT in needs else None,
            LAP: lap,
        }
        return Fields(
            **{k: (v if keep_graph else v.detach()) if k in needs else None for k, v in out.items()}
        )

    @staticmethod
    def _laplacian(grad_all: torch.Tensor, xs: torch.Tensor, n_space: int) -> torch.Tensor:
        """Σ_i ∂²u/∂x_i² from the gradients grad_all (c, N, D) of the c copies xs (c, N, D)."""
        copies = xs.shape[0]
        lap = torch.zeros_like(grad_all[0, :, 0])
        if not grad_all.requires_grad:  # u is affine in x
            return lap
        for first in range(0, n_space, copies):
            # Copy j differentiates ∂u/∂x_{first+j}; copies are independent, so the gradient of
            # the sum over copies holds, in copy j, the Hessian row of direction first + j.
            dirs = torch.arange(first, min(first + copies, n_space), device=xs.device)
            used = torch.arange(len(dirs), device=xs.device)
            hess_rows = torch.autograd.grad(
                grad_all[used, :, dirs].sum(),
                xs,
                create_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )[0]
            lap = lap + hess_rows[used, :, dirs].sum(dim=0)
        return lap
