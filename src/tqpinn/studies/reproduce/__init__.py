"""One-command reproduction of the ablation: FP32 autodiff to the full pipeline, per problem."""

from tqpinn.studies.reproduce.recipes import BUDGETS, PROBLEMS, TITLES, variant_configs
from tqpinn.studies.reproduce.study import reproduce
from tqpinn.studies.reproduce.variants import VARIANTS, Variant

__all__ = ["BUDGETS", "PROBLEMS", "TITLES", "VARIANTS", "Variant", "reproduce", "variant_configs"]
