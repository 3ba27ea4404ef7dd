"""Evaluation on the fixed test set: of a built run, or of a run directory's newest checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import UserError
from tqpinn.nn import fp32_gemms
from tqpinn.pdes.source import check_problem_source
from tqpinn.train.config import config_from_dict, read_yaml
from tqpinn.train.loss import predict
from tqpinn.train.metrics import error_metrics
from tqpinn.train.resume import Warn, resume_newest
from tqpinn.train.run import Run, build_run

FP32_SUFFIX = "_fp32"
"""Error keys of a quantized run's weights evaluated with FP32 GEMMs end in this."""
EVAL_SEED_OFFSET = 1_000_003
"""Evaluation randomness (smoothed Stein values) is seeded apart, so it never touches training's."""


def predict_test_set(run: Run) -> torch.Tensor:
    """The model's solution on the fixed test set (N,), with its own seeded randomness."""
    generator = torch.Generator().manual_seed(run.config.seed + EVAL_SEED_OFFSET)
    return predict(run.problem, run.net, run.estimator, run.test_x, generator)


def evaluate(run: Run) -> dict[str, float]:
    """Errors against the exact solution on the fixed test set (empty without one).

    A quantized run's network is evaluated as it trains (every GEMM quantized), and its weights
    once more with every GEMM in FP32 (keys ``rel_l2_fp32``, ...): the first includes the
    rounding noise of quantized inference, the second is what the training itself reached.
    """
    if run.test_u is None:
        return {}
    errors = error_metrics(predict_test_set(run), run.test_u)
    if run.spec is None:
        return errors
    with fp32_gemms(run.net):
        fp32 = error_metrics(predict_test_set(run), run.test_u)
    return {**errors, **{f"{key}{FP32_SUFFIX}": value for key, value in fp32.items()}}


def evaluate_run(run_dir: Path, warn: Warn, device: str = "cpu") -> dict[str, Any]:
    """Errors of the newest valid checkpoint in ``run_dir`` against the exact solution
    (``warn`` gets the line about a damaged newer one)."""
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    config = config_from_dict(read_yaml(run_dir / "config.yaml"))
    check_problem_source(config.problem.name, run_dir)
    run = build_run(config, device)
    point = resume_newest(run, run_dir, warn)
    return {
        "checkpoint": point.path.name,
        "step": point.step,
        "problem": run.problem.name,
        **evaluate(run),
    }
