"""One-command reproduction of the ablation: FP32 autodiff to the full pipeline, per problem."""

from tqpinn.reproduce.recipes import BUDGETS, PROBLEMS, RECIPES, Recipe
from tqpinn.reproduce.study import reproduce
from tqpinn.reproduce.variants import VARIANTS, Variant

__all__ = ["BUDGETS", "PROBLEMS", "RECIPES", "VARIANTS", "Recipe", "Variant", "reproduce"]
