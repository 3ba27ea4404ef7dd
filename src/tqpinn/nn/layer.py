"""Base class of every layer that multiplies matrices: its GEMMs all go through qops.gemm."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from tqpinn.nn.streams import Product, StreamBundle, StreamModule

if TYPE_CHECKING:
    from tqpinn.quant.spec import QuantSpec


class GemmLayer(StreamModule):
    """A linear map h ↦ h Wᵀ + b whose matmuls call ``qops.gemm(..., self.quant)``.

    Subclasses give :meth:`product` and set ``bias``; called on a tensor (..., in_features) the
    layer returns (..., out_features), on a stream bundle the bundle's linear rule applies.
    ``quant`` is the layer's quantization spec (None: FP32). It is set from outside, by
    :func:`set_quant`, so that layers never know about configs or the trainer.
    """

    quant: QuantSpec | None = None
    bias: nn.Parameter | None

    @abstractmethod
    def product(self) -> Product:
        """h ↦ h Wᵀ without bias, prepared once per call and applied to every operand of the
        call (a TT layer merges its cores here)."""

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        y = self.product()(x)
        return y if self.bias is None else y + self.bias

    def forward_bundle(self, bundle: StreamBundle) -> StreamBundle:
        return bundle.linear(self.product(), self.bias)


def check_input(layer: nn.Module, x: object, in_features: int) -> None:
    """A clear error for an input ``layer`` cannot take: not a floating-point tensor, or a last
    dimension other than ``in_features``. Reads metadata only: no synchronisation."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{type(layer).__name__} needs a floating-point tensor, got {got}")
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ValueError(
            f"{type(layer).__name__}(in_features={in_features}) got an input of shape "
            f"{tuple(x.shape)}; its last dimension must be {in_features}"
        )


def set_quant(model: nn.Module, spec: QuantSpec | None) -> None:
    """Give every GEMM layer of ``model`` the quantization spec ``spec`` (None: FP32)."""
    for module in model.modules():
        if isinstance(module, GemmLayer):
            module.quant = spec


@contextmanager
def fp32_gemms(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block every GEMM layer of ``model`` runs in FP32; each layer's own spec is
    given back afterwards (also on an exception)."""
    layers = [m for m in model.modules() if isinstance(m, GemmLayer)]
    specs = [layer.quant for layer in layers]
    try:
        for layer in layers:
            layer.quant = None
        yield model
    finally:
        for layer, spec in zip(layers, specs, strict=True):
            layer.quant = spec
