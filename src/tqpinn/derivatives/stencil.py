"""Central differences along the coordinate axes: Stein's machinery with fixed directions.

With step h and the axes e_i of the C input columns a condition needs, writing
odd_i = g(x + h e_i) − g(x − h e_i) and even_i = g(x + h e_i) + g(x − h e_i) − 2g(x):

    ∂g/∂x_i ≈ odd_i / (2h)                    (also ∂g/∂t along the time column)
    Δg      ≈ Σ_{i spatial} even_i / h²

Both have bias O(h²) (the next Taylor terms, h²/6 ∂³g/∂x_i³ and h²/12 ∂⁴g/∂x_i⁴) and no
sampling noise. Rows per point: 2C + 1. DiffQuant (``diffquant``: off, input, full) carries the
differences as Stein does (:func:`tqpinn.derivatives.pairs.evaluate_pairs`), so that a step h
below a quantized format's step survives the GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from tqpinn.derivatives.base import Estimator, Network
from tqpinn.derivatives.columns import axes, derivative_columns, split_first_order
from tqpinn.derivatives.fields import LAP, Fields, U
from tqpinn.derivatives.options import check_choice, check_positive_float
from tqpinn.derivatives.pairs import DIFFQUANT_MODES, OFF, evaluate_pairs


@dataclass(frozen=True)
class Stencil(Estimator):
    """Second-order central differences along the needed input columns.

    h: step (input units). diffquant: as :class:`~tqpinn.derivatives.stein.Stein`'s.
    """

    name: ClassVar[str] = "stencil"
    h: float = 0.01
    diffquant: str = OFF

    def __post_init__(self) -> None:
        object.__setattr__(self, "h", check_positive_float("h", self.h))
        check_choice("diffquant", self.diffquant, DIFFQUANT_MODES)

    def estimated_fields(
        self,
        net: Network,
        x: torch.Tensor,
        needs: frozenset[str],
        n_space: int,
        generator: torch.Generator | None,
    ) -> Fields:
        n, dims = x.shape
        columns = derivative_columns(needs, n_space, dims)
        delta = (self.h * axes(columns, dims, x)).expand(n, len(columns), dims).contiguous()
        pairs = evaluate_pairs(net, x, delta, bool(needs & {U, LAP}), self.diffquant)
        grad, dt = split_first_order(pairs.odd / (2 * self.h), needs, n_space)
        lap = pairs.even[:, :n_space].sum(dim=1) / self.h**2 if LAP in needs else None
        return Fields(u=pairs.base if U in needs else None, grad=grad, lap=lap, dt=dt)
