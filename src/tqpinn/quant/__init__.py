"""Quantized training: operand roles and presets, storage of saved tensors, memory accounting.

``tqpinn.quant.model.apply_quant`` (not re-exported here: it imports the layers, which import
this package through ``tqpinn.qops``) puts a spec on a whole model.
"""

from tqpinn.quant.spec import PRESETS, ROLES, Operand, QuantSpec, resolve_quant
from tqpinn.quant.store import stored_activations

__all__ = ["PRESETS", "ROLES", "Operand", "QuantSpec", "resolve_quant", "stored_activations"]
