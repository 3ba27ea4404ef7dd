"""TTSpec: which layers of an MLP are TT-matrices and how, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

FactorPair = tuple[tuple[int, ...], tuple[int, ...]]
"""(out factors, in factors) of one TT-matrix."""


@dataclass(frozen=True)
class TTSpec:
    """The TT options of a model, from config to layer (see :class:`tqpinn.nn.tt.TTLinear`).

    layers: 0-based indices of the TT layers (0 is the input layer); shapes: None (automatic
    for all) or one entry per TT layer, in the order of ``layers``: a factor pair or None
    (automatic). The other options apply to every TT layer.
    """

    layers: tuple[int, ...]
    ranks: int | tuple[int, ...] = 2
    shapes: tuple[FactorPair | None, ...] | None = None
    n_cores: int | None = None
    plan: str = "sequential"
    groups: int | tuple[int, ...] | None = None
    init: str = "torch"
    merge: str = "fp32"
    recompute: bool = True

    def shape_of(self) -> dict[int, FactorPair | None]:
        """TT layer index -> its factor pair (None: automatic)."""
        shapes = (None,) * len(self.layers) if self.shapes is None else self.shapes
        return dict(zip(self.layers, shapes, strict=True))
