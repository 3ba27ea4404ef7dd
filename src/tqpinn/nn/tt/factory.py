"""A linear factory for :class:`tqpinn.nn.mlp.MLP` that makes chosen layers TT-matrices."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from tqpinn.errors import UserError
from tqpinn.nn.linear import Linear
from tqpinn.nn.mlp import LinearFactory
from tqpinn.nn.tt.layer import TTLinear

FactorPair = tuple[Sequence[int], Sequence[int]]


def tt_linear_factory(
    n_layers: int,
    layers: Sequence[int],
    ranks: int | Sequence[int] = 2,
    shapes: Sequence[FactorPair | None] | None = None,
    n_cores: int | None = None,
    plan: str = "sequential",
    groups: int | Sequence[int] | None = None,
    init: str = "torch",
    merge: str = "fp32",
) -> LinearFactory:
    """Factory making layers ``layers`` (0-based, of ``n_layers``) TT and the others dense.

    shapes: None (automatic for all) or one entry per TT layer, in the order of ``layers``: an
    (out factors, in factors) pair or None (automatic). The other options apply to every TT layer
    (see :class:`TTLinear`).
    """
    chosen = list(layers)
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise UserError(
            f"model.tt.layers: {bad} out of range; this model has layers 0..{n_layers - 1}"
        )
    if len(set(chosen)) != len(chosen):
        raise UserError(f"model.tt.layers: {chosen} lists a layer twice")
    per_layer = [None] * len(chosen) if shapes is None else list(shapes)
    if len(per_layer) != len(chosen):
        raise UserError(
            f"model.tt.shapes: {len(per_layer)} entries for the {len(chosen)} TT layers "
            f"{chosen}; give one [out factors, in factors] (or null) per TT layer"
        )
    shape_of = dict(zip(chosen, per_layer, strict=True))

    def factory(in_features: int, out_features: int, index: int) -> nn.Module:
        if index not in shape_of:
            return Linear(in_features, out_features)
        return TTLinear(
            in_features,
            out_features,
            ranks,
            shape_of[index],
            n_cores,
            plan,
            groups,
            init,
            merge=merge,
        )

    return factory
