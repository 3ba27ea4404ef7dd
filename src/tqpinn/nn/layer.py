"""Base class of every layer that multiplies matrices: its GEMMs all go through qops.gemm."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch
from torch import nn

from tqpinn.nn.streams import Streams

if TYPE_CHECKING:
    from tqpinn.quant.spec import QuantSpec


class GemmLayer(nn.Module, ABC):
    """A linear map whose matmuls call ``qops.gemm(..., self.quant)``.

    ``quant`` is the layer's quantization spec (None: FP32). It is set from outside, by
    :func:`set_quant`, so that layers never know about configs or the trainer.
    """

    quant: QuantSpec | None = None

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_features) -> (..., out_features)."""

    @abstractmethod
    def forward_streams(self, s: Streams) -> Streams:
        """The same map on centre values and perturbation differences (bias on base only)."""


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
