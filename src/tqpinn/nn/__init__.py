"""Layers whose matmuls all go through :mod:`tqpinn.qops`; each takes a tensor or a stream
bundle when called (:mod:`tqpinn.nn.streams`)."""

from tqpinn.nn.activations import ACTIVATIONS, Activation, Sin, Tanh
from tqpinn.nn.layer import GemmLayer, fp32_gemms, set_quant
from tqpinn.nn.linear import Linear
from tqpinn.nn.mlp import MLP
from tqpinn.nn.streams import DifferenceStreams, StreamBundle, StreamModule

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Activation",
    "DifferenceStreams",
    "GemmLayer",
    "Linear",
    "Sin",
    "StreamBundle",
    "StreamModule",
    "Tanh",
    "fp32_gemms",
    "set_quant",
]
