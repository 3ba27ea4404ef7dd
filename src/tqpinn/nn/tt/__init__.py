"""Tensor-train layers: the TT-matrix layer, its shapes, initialisation, contraction plans
(PRS among them), TT-SVD, and the factory that puts TT layers into an MLP."""

from tqpinn.nn.tt.factory import tt_linear_factory
from tqpinn.nn.tt.layer import TTLinear
from tqpinn.nn.tt.plans import ContractionPlan, make_plan, plan_cost
from tqpinn.nn.tt.shapes import TTShape, tt_shape

__all__ = [
    "ContractionPlan",
    "TTLinear",
    "TTShape",
    "make_plan",
    "plan_cost",
    "tt_linear_factory",
    "tt_shape",
]
