"""What each ablation variant saves for backward, per module, at a problem's recipe.

One training step of each variant (built as ``tqpinn reproduce`` builds it) under
:func:`tqpinn.quant.memory.saved_bytes`: the bytes kept from forward to backward at the formats'
real widths, by the module that saved them, and the ratio of each variant's total to the FP32-SE
dense reference. Memory does not depend on timing; a step of the largest recipe (HJB-20D, Stein
with 1024 pairs) takes a few seconds and some GB on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from tqpinn.quant.memory import saved_bytes
from tqpinn.studies.reproduce.recipes import PROBLEMS, variant_configs
from tqpinn.studies.reproduce.variants import REFERENCE, VARIANTS_BY_KEY
from tqpinn.train.trainer import build_run, train_step

VARIANTS = (REFERENCE, "smx_se_diffquant_dense", "full_pipeline", "full_pipeline_taylor")
"""The variants measured by default: the reference first."""

MIB = 2.0**20


def variant_saved_bytes(
    problem: str,
    variants: Sequence[str] = VARIANTS,
    budget: str = "paper",
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Per variant of ``problem`` at ``budget``: saved bytes of one training step (total,
    packed, plain, per module) and the total over the FP32-SE dense reference's (when the
    reference is among ``variants``). Unknown variant keys raise KeyError naming the choices."""
    unknown = [v for v in variants if v not in VARIANTS_BY_KEY]
    if unknown:
        raise KeyError(f"unknown variants {unknown}; choose from {sorted(VARIANTS_BY_KEY)}")
    configs = variant_configs(budget, problem, [VARIANTS_BY_KEY[v] for v in variants])
    rows: dict[str, Any] = {}
    for key, config in configs.items():
        torch.set_float32_matmul_precision("highest")
        run = build_run(config)
        rows[key] = saved_bytes(lambda run=run: train_step(run, 0), run.net).as_dict()
        del run  # free this variant's step before the next is built
        log(f"{problem} {key}: {rows[key]['total'] / MIB:.1f} MiB")
    if REFERENCE in rows:
        reference = rows[REFERENCE]["total"]
        for row in rows.values():
            row["vs_reference"] = row["total"] / reference
    return rows


def saved_bytes_study(
    problems: Sequence[str] = PROBLEMS,
    variants: Sequence[str] = VARIANTS,
    budget: str = "paper",
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """:func:`variant_saved_bytes` for every problem; a JSON-ready dict."""
    return {
        "budget": budget,
        "reference": REFERENCE,
        "units": "bytes",
        "problems": {p: variant_saved_bytes(p, variants, budget, log) for p in problems},
    }
