"""Layers whose matmuls all go through :mod:`tqpinn.qops`."""

from tqpinn.nn.activations import ACTIVATIONS, Activation, Sin, Tanh
from tqpinn.nn.layer import GemmLayer, set_quant
from tqpinn.nn.linear import Linear
from tqpinn.nn.mlp import MLP
from tqpinn.nn.streams import Streams

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "Activation",
    "GemmLayer",
    "Linear",
    "Sin",
    "Streams",
    "Tanh",
    "set_quant",
]
