"""The ablation of `tqpinn reproduce`: ten variants, each a change to a problem's pipeline.

From the FP32 autodiff baseline to the paper's full pipeline (Stein + SMX + DiffQuant + TT with
partial reconstruction), one ingredient at a time; then the full pipeline with the MX baseline
format instead of SMX, and with the Taylor and the stencil estimators instead of Stein.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

AUTODIFF: dict[str, Any] = {"name": "autodiff"}
TAYLOR: dict[str, Any] = {"name": "taylor"}
STENCIL_DIFFQUANT: dict[str, Any] = {"name": "stencil", "h": 0.01, "diffquant": "full"}
"""Central differences at h = 0.01 (input units), carried through every layer by DiffQuant."""


def stein(diffquant: str) -> dict[str, Any]:
    """Stein's section with DiffQuant ``diffquant``; sigma and pairs stay the pipeline's."""
    return {"name": "stein", "diffquant": diffquant}


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table.

    key: run directory name; label: table name; quant: preset; estimator: the estimator
    section it trains with (config keys of :mod:`tqpinn.train.config`); tt_plan: None (dense
    layers) or the TT contraction plan of the pipeline's TT layers ("sequential", or
    "partial" = PRS).
    """

    key: str
    label: str
    quant: str
    estimator: dict[str, Any]
    tt_plan: str | None = None

    def config(self, pipeline: dict[str, Any]) -> dict[str, Any]:
        """This variant of a problem's full-pipeline config (plain, resolved data: Stein with
        DiffQuant, TT layers contracted by PRS): the ingredients it leaves out turned off, its
        estimator section in place of the pipeline's."""
        data = copy.deepcopy(pipeline)
        data["quant"] = self.quant
        # The pipeline's own estimator keeps the options the variant leaves unsaid (Stein's
        # sigma and pairs); another estimator's options are not the pipeline's to give.
        same = data["estimator"]["name"] == self.estimator["name"]
        data["estimator"] = {**(data["estimator"] if same else {}), **self.estimator}
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
    Variant("fp32_se_dense", "FP32-SE dense", "fp32", stein("off")),
    Variant("fp32_se_tt", "FP32-SE TT", "fp32", stein("off"), "sequential"),
    Variant("smx_se_naive", "SMX-SE naive", "smx_paper", stein("off")),
    Variant("smx_se_diffquant_dense", "SMX-SE DiffQuant dense", "smx_paper", stein("full")),
    Variant(
        "smx_se_diffquant_tt_seq",
        "SMX-SE DiffQuant TT sequential",
        "smx_paper",
        stein("full"),
        "sequential",
    ),
    Variant("full_pipeline", "Full pipeline (PRS)", "smx_paper", stein("full"), "partial"),
    Variant("full_pipeline_mx", "Full pipeline, mx_int8", "mx_int8", stein("full"), "partial"),
    Variant("full_pipeline_taylor", "Full pipeline, taylor", "smx_paper", TAYLOR, "partial"),
    Variant(
        "full_pipeline_stencil",
        "Full pipeline, stencil",
        "smx_paper",
        STENCIL_DIFFQUANT,
        "partial",
    ),
)
"""In table order. The FP32-SE dense row is the reference of the done-when ratios."""

REFERENCE, PIPELINE, NAIVE = "fp32_se_dense", "full_pipeline", "smx_se_naive"
AUTODIFF_REFERENCE, TAYLOR_PIPELINE = "fp32_ad_dense", "full_pipeline_taylor"
"""The taylor full pipeline is measured against FP32 autodiff: both exact derivatives."""

VARIANTS_BY_KEY = {v.key: v for v in VARIANTS}
