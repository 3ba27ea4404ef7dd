"""Quantized training: operand roles and presets, the typed ``quant`` config, storage of saved
tensors, memory accounting.

A whole model is quantized from outside by ``tqpinn.nn.precision.apply_quant``.
"""

from tqpinn.quant.config import QuantConfig
from tqpinn.quant.spec import PRESETS, ROLES, Operand, QuantSpec, make_preset, resolve_quant
from tqpinn.quant.store import stored_activations

__all__ = [
    "PRESETS",
    "ROLES",
    "Operand",
    "QuantConfig",
    "QuantSpec",
    "make_preset",
    "resolve_quant",
    "stored_activations",
]
