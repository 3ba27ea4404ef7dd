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


def set_quant(model: nn.Module, spec: QuantSpec | None) -> None:
    """Give every GEMM layer of ``model`` the quantization spec ``spec`` (None: FP32)."""
    for module in model.modules():
        if isinstance(module, GemmLayer):
            module.quant = spec
