"""PDE problems: the interface, the built-in problems, domain samplers and the registry."""

from tqpinn.derivatives.fields import DT, GRAD, LAP, Fields, U
from tqpinn.pdes.base import Condition, Problem
from tqpinn.pdes.domains import AtTime, Ball, Cube, CubeBoundary, SpaceTime, Sphere
from tqpinn.pdes.heat import Heat
from tqpinn.pdes.hjb import HJB
from tqpinn.pdes.poisson import Poisson
from tqpinn.pdes.registry import PROBLEMS, get_problem

__all__ = [
    "DT",
    "GRAD",
    "HJB",
    "LAP",
    "PROBLEMS",
    "AtTime",
    "Ball",
    "Condition",
    "Cube",
    "CubeBoundary",
    "Fields",
    "Heat",
    "Poisson",
    "Problem",
    "SpaceTime",
    "Sphere",
    "U",
    "get_problem",
]
