"""One-command reproduction of the ablation: FP32 autodiff to the full pipeline, per problem."""

from tqpinn.studies.reproduce.cap import NO_CAP, BudgetCap
from tqpinn.studies.reproduce.recipes import BUDGETS, PROBLEMS, TITLES, variant_configs
from tqpinn.studies.reproduce.study import reproduce
from tqpinn.studies.reproduce.variants import VARIANTS, Variant

__all__ = [
    "BUDGETS",
    "NO_CAP",
    "PROBLEMS",
    "TITLES",
    "VARIANTS",
    "BudgetCap",
    "Variant",
    "reproduce",
    "variant_configs",
]
