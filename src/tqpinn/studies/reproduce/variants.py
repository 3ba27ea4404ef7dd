"""The ablation of `tqpinn reproduce`: eight variants, each a change to a problem's pipeline.

From the FP32 autodiff baseline to the paper's full pipeline (Stein + SMX + DiffQuant + TT with
partial reconstruction), one ingredient at a time, plus the full pipeline with the MX baseline
format instead of SMX.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

AUTODIFF, STEIN = "autodiff", "stein"


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table.

    key: run directory name; label: table name; quant: preset; estimator: "autodiff" or
    "stein"; diffquant: the Stein estimator's mode; tt_plan: None (dense layers) or the TT
    contraction plan of the pipeline's TT layers ("sequential", or "partial" = PRS).
    """

    key: str
    label: str
    quant: str
    estimator: str
    diffquant: str = "off"
    tt_plan: str | None = None

    def config(self, pipeline: dict[str, Any]) -> dict[str, Any]:
        """This variant of a problem's full-pipeline config (plain, resolved data: Stein with
        DiffQuant, TT layers contracted by PRS): the ingredients it leaves out turned off."""
        data = copy.deepcopy(pipeline)
        data["quant"] = self.quant
        if self.estimator == AUTODIFF:
            data["estimator"] = {"name": AUTODIFF}
        else:
            data["estimator"] = {**data["estimator"], "name": STEIN, "diffquant": self.diffquant}
        tt = data["model"]["tt"]
        if self.tt_plan is None:
            data["model"]["tt"] = None
        else:
            # PRS groups mean nothing to the other plans.
            groups = tt["groups"] if self.tt_plan == "partial" else None
            data["model"]["tt"] = {**tt, "plan": self.tt_plan, "groups": groups}
        return data


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32_ad_dense", "FP32-AD dense", "fp32", AUTODIFF),
    Variant("fp32_se_dense", "FP32-SE dense", "fp32", STEIN),
    Variant("fp32_se_tt", "FP32-SE TT", "fp32", STEIN, tt_plan="sequential"),
    Variant("smx_se_naive", "SMX-SE naive", "smx_paper", STEIN),
    Variant("smx_se_diffquant_dense", "SMX-SE DiffQuant dense", "smx_paper", STEIN, "full"),
    Variant(
        "smx_se_diffquant_tt_seq",
        "SMX-SE DiffQuant TT sequential",
        "smx_paper",
        STEIN,
        "full",
        "sequential",
    ),
    Variant("full_pipeline", "Full pipeline (PRS)", "smx_paper", STEIN, "full", "partial"),
    Variant("full_pipeline_mx", "Full pipeline, mx_int8", "mx_int8", STEIN, "full", "partial"),
)
"""In table order. The FP32-SE dense row is the reference of the done-when ratios."""

REFERENCE, PIPELINE, NAIVE = "fp32_se_dense", "full_pipeline", "smx_se_naive"

VARIANTS_BY_KEY = {v.key: v for v in VARIANTS}
