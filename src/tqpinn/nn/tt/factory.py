"""A linear factory for :class:`tqpinn.nn.mlp.MLP` that makes chosen layers TT-matrices."""

from __future__ import annotations

from torch import nn

from tqpinn.errors import UserError
from tqpinn.nn.linear import Linear
from tqpinn.nn.mlp import LinearFactory
from tqpinn.nn.tt.layer import TTLinear
from tqpinn.nn.tt.spec import TTSpec


def tt_linear_factory(n_layers: int, spec: TTSpec) -> LinearFactory:
    """Factory making layers ``spec.layers`` (0-based, of ``n_layers``) TT and the others
    dense; every TT layer gets the options of ``spec``."""
    chosen = list(spec.layers)
    bad = [i for i in chosen if not 0 <= i < n_layers]
    if bad:
        raise UserError(
            f"model.tt.layers: {bad} out of range; this model has layers 0..{n_layers - 1}"
        )
    if len(set(chosen)) != len(chosen):
        raise UserError(f"model.tt.layers: {chosen} lists a layer twice")
    if spec.shapes is not None and len(spec.shapes) != len(chosen):
        raise UserError(
            f"model.tt.shapes: {len(spec.shapes)} entries for the {len(chosen)} TT layers "
            f"{chosen}; give one [out factors, in factors] (or null) per TT layer"
        )
    shape_of = spec.shape_of()

    def factory(in_features: int, out_features: int, index: int) -> nn.Module:
        if index not in shape_of:
            return Linear(in_features, out_features)
        layer = TTLinear(
            in_features,
            out_features,
            spec.ranks,
            shape_of[index],
            spec.n_cores,
            spec.plan,
            spec.groups,
            spec.init,
            merge=spec.merge,
            recompute=spec.recompute,
        )
        _refuse_sequential_partial(layer, index)
        return layer

    return factory


def _refuse_sequential_partial(layer: TTLinear, index: int) -> None:
    """Plan "partial" with one core per group is the sequential plan: a PRS run that would
    silently run without merging anything (e.g. groups 2 on the 2 automatic cores of a
    width-64 layer) is refused."""
    plan, shape = layer.plan, layer.shape
    if plan.name != "partial" or max(plan.groups) > 1:
        return
    raise UserError(
        f"model.tt: plan 'partial' splits the {shape.n_cores} cores of layer {index} "
        f"({layer.in_features} -> {layer.out_features}, factors out {list(shape.out_factors)} "
        f"x in {list(shape.in_factors)}) into {len(plan.groups)} groups of one core, which is "
        "the sequential plan; use fewer model.tt.groups, more cores (model.tt.n_cores or "
        "model.tt.shapes), or plan: sequential"
    )
