"""Quantized training: operand roles and presets, storage of saved tensors, memory accounting.

A whole model is quantized from outside by ``tqpinn.nn.precision.apply_quant``.
"""

from tqpinn.quant.spec import PRESETS, ROLES, Operand, QuantSpec, resolve_quant
from tqpinn.quant.store import stored_activations

__all__ = ["PRESETS", "ROLES", "Operand", "QuantSpec", "resolve_quant", "stored_activations"]
