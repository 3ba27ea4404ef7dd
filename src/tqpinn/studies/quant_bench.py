"""Training-step time and saved-for-backward bytes of fp32, mx_int8 and smx_paper, and of SMX
with DiffQuant through every layer (dense) and the full pipeline (DiffQuant, TT layers, PRS).

Each recipe is built once per variant (same seed) and the variants' steps are timed in one
interleaved loop, so that load from other processes hits them alike; results are ratios to the
FP32 step of the same recipe measured in the same loop, with the load average before and after
and the kernel paths that ran (tqpinn.quant.fastpath.describe).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tqpinn.formats import SMX_INT8, SMX_INT12, quantize
from tqpinn.machine import load_average, machine_info
from tqpinn.qops import gemm, observe_gemms
from tqpinn.quant import fastpath
from tqpinn.quant.memory import saved_bytes
from tqpinn.timing import interleaved, medians
from tqpinn.train.config import load_config
from tqpinn.train.loss import pinn_loss
from tqpinn.train.trainer import build_run, sample_batch, train_step

PRESETS = ("fp32", "mx_int8", "smx_paper")


@dataclass(frozen=True)
class Recipe:
    """A problem's FP32 Stein recipe file and its full-pipeline file (which extends it)."""

    stein: str
    pipeline: str


@dataclass(frozen=True)
class Variant:
    """A timed variant: the changes it makes to the recipe's Stein file (before the caller's
    overrides), or the recipe's full-pipeline file as it is."""

    changes: tuple[str, ...] = ()
    pipeline: bool = False

    def config_file(self, recipe: Recipe) -> Path:
        return Path(recipe.pipeline if self.pipeline else recipe.stein)


VARIANTS: dict[str, Variant] = {
    "fp32": Variant(("quant=fp32",)),
    "mx_int8": Variant(("quant=mx_int8",)),
    "smx_paper": Variant(("quant=smx_paper",)),
    "smx_diffquant": Variant(("quant=smx_paper", "estimator.diffquant=full")),
    "full_pipeline": Variant(pipeline=True),  # SMX, DiffQuant full, TT + PRS
}
SHORT = {"fp32": "fp32", "mx_int8": "mx", "smx_paper": "smx", "smx_diffquant": "smx_dq",
         "full_pipeline": "full"}  # fmt: skip
CONFIGS = {
    "poisson2d_se": Recipe("configs/poisson2d_fp32_se.yaml", "configs/poisson2d_smx_se_tt.yaml"),
    "heat100d_se": Recipe("configs/heat100d_fp32_se.yaml", "configs/heat100d_smx_se_tt.yaml"),
}
"""The Poisson-2D and Heat-100D Stein recipes (PAPER_NOTES.md §7) and their full pipelines."""


def _runs(recipe: Recipe, overrides: Sequence[str]) -> dict[str, Any]:
    return {
        name: build_run(load_config(v.config_file(recipe), [*v.changes, *overrides]))
        for name, v in VARIANTS.items()
    }


def _bench_config(recipe: Recipe, overrides: Sequence[str], repeats: int) -> dict[str, Any]:
    runs = _runs(recipe, overrides)
    memory = {
        p: saved_bytes(lambda r=r: train_step(r, 0), r.net).as_dict() for p, r in runs.items()
    }
    # saved_bytes took step 0 of every run: the timed steps are 1..repeats, no warm-up round.
    steps = {v: itertools.count(1) for v in VARIANTS}
    times = interleaved(
        {v: functools.partial(_next_step, run, steps[v]) for v, run in runs.items()},
        repeats,
        warmup=0,
    )
    median = medians(times)
    total = {p: m["total"] for p, m in memory.items()}
    first = runs["fp32"]
    return {
        "config": recipe.stein,
        "pipeline_config": recipe.pipeline,
        "rows_per_step": _rows_per_step(first),
        **{f"{SHORT[v]}_step_s": median[v] for v in VARIANTS},
        **{f"{SHORT[v]}_over_fp32": median[v] / median["fp32"] for v in VARIANTS if v != "fp32"},
        "step_s": times,
        "saved_bytes": memory,
        "saved_ratio": {
            "smx_over_fp32": total["smx_paper"] / total["fp32"],
            "smx_over_mx": total["smx_paper"] / total["mx_int8"],
            "mx_over_fp32": total["mx_int8"] / total["fp32"],
        },
    }


def _next_step(run: Any, steps: Iterator[int]) -> None:
    train_step(run, next(steps))


def _rows_per_step(run: Any) -> int:
    """Network rows of one step's forward (all conditions), counted by the GEMM trace."""
    first: list[int] = []

    def record(event: Any) -> None:
        if event.phase == "forward" and event.k == run.problem.input_dim:
            first.append(event.m)

    with torch.no_grad(), observe_gemms(record):
        pinn_loss(run.problem, run.net, run.estimator, run.conditions, sample_batch(run), None)
    return sum(first)


def fp32_overhead(rows: int = 20_000, width: int = 256, repeats: int = 5) -> dict[str, float]:
    """Forward+backward of one FP32 GEMM: plain matmul vs qops.gemm unobserved (the same
    matmul) vs qops.gemm observed (the traced autograd Function), interleaved."""
    x = torch.randn(rows, width, requires_grad=True)
    w = torch.randn(width, width, requires_grad=True)

    def plain() -> None:
        (x @ w.T).sum().backward()

    def unobserved() -> None:
        gemm(x, w).sum().backward()

    def observed() -> None:
        with observe_gemms(lambda e: None):
            gemm(x, w).sum().backward()

    variants = {"plain": plain, "qops": unobserved, "qops_observed": observed}
    med = medians(interleaved(variants, repeats))
    return {
        "rows": rows,
        "width": width,
        **{f"{k}_s": v for k, v in med.items()},
        "qops_over_plain": med["qops"] / med["plain"],
        "observed_over_plain": med["qops_observed"] / med["plain"],
    }


def forward_product(rows: int = 102_400, width: int = 256, repeats: int = 3) -> dict[str, Any]:
    """One forward product Q(x)·Q(w)ᵀ of smx_paper (x: rows x width activations, w: width x
    width), interleaved with the FP32 matmul: through the exact bf16 kernel (quantization of x
    included) and through the PyTorch fake-quant reference."""
    x, w = torch.randn(rows, width).tanh(), torch.randn(width, width) / width**0.5
    w_bf16 = quantize(w, SMX_INT8).to(torch.bfloat16)  # exact: ≤ 8 significant bits

    def fast() -> None:
        x_bf16 = fastpath.quantize_matrix(x, SMX_INT8, packed=True, bf16=True)[2]
        fastpath.gemm_bf16(x_bf16, w_bf16)

    def reference() -> None:
        quantize(x, SMX_INT8) @ quantize(w, SMX_INT8).T

    variants = {"fp32": lambda: x @ w.T, "reference": reference}
    if fastpath.gemm_available():
        variants["fast"] = fast
    med = medians(interleaved(variants, repeats))
    return {
        "rows": rows,
        "width": width,
        **{f"{k}_s": v for k, v in med.items()},
        **{f"{k}_over_fp32": v / med["fp32"] for k, v in med.items() if k != "fp32"},
    }


def bf16_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x on an INT12 grid as hi + lo, both exact in bfloat16: hi rounded to 8 significant bits,
    lo the rest (at most 4 more bits)."""
    hi = x.to(torch.bfloat16)
    return hi, (x - hi.float()).to(torch.bfloat16)


def int12_products(rows: int = 25_700, width: int = 256, repeats: int = 3) -> dict[str, Any]:
    """The backward products of smx_paper, dgrad Q12(dY)·Q8(W) and wgrad Q12(dY)ᵀ·Q8(A), as the
    FP32 matmul on grid values and as two exact bf16 kernel products (INT12 split into hi + lo),
    interleaved; whether the split equals the matmul bit for bit is recorded too. Only where
    the bf16 kernel runs (else {"bf16_gemm": False})."""
    if not fastpath.gemm_available():
        return {"bf16_gemm": False}
    g = torch.Generator().manual_seed(0)
    grad = quantize(torch.randn(rows, width, generator=g) * 1e-3, SMX_INT12)
    w = quantize(torch.randn(width, width, generator=g) / width**0.5, SMX_INT8)
    a = quantize(torch.randn(rows, width, generator=g).tanh(), SMX_INT8)
    hi, lo = bf16_split(grad)
    hi_t, lo_t = bf16_split(grad.T.contiguous())
    w_t, a_t = w.T.to(torch.bfloat16), a.T.to(torch.bfloat16)

    def split_dgrad() -> torch.Tensor:
        return fastpath.gemm_bf16(hi, w_t) + fastpath.gemm_bf16(lo, w_t)

    def split_wgrad() -> torch.Tensor:
        return fastpath.gemm_bf16(hi_t, a_t) + fastpath.gemm_bf16(lo_t, a_t)

    variants = {
        "fp32_dgrad": lambda: grad @ w,
        "split_dgrad": split_dgrad,
        "fp32_wgrad": lambda: grad.T @ a,
        "split_wgrad": split_wgrad,
    }
    med = medians(interleaved(variants, repeats))
    return {
        "bf16_gemm": True,
        "rows": rows,
        "width": width,
        **{f"{k}_s": v for k, v in med.items()},
        "split_over_fp32_dgrad": med["split_dgrad"] / med["fp32_dgrad"],
        "split_over_fp32_wgrad": med["split_wgrad"] / med["fp32_wgrad"],
        "split_equals_fp32": torch.equal(split_dgrad(), grad @ w)
        and torch.equal(split_wgrad(), grad.T @ a),
    }


def bench_quant(
    configs: dict[str, Recipe] | None = None,
    overrides: Sequence[str] = (),
    repeats: int = 3,
    overhead_rows: int = 20_480,
) -> dict[str, Any]:
    """Step times (median of ``repeats``, interleaved) and saved bytes per variant and config;
    the top-level ``*_step_s``, ``smx_over_fp32`` and ``saved_bytes`` are the first config's."""
    configs = CONFIGS if configs is None else configs
    load_before = load_average()
    results = {name: _bench_config(recipe, overrides, repeats) for name, recipe in configs.items()}
    headline = next(iter(results.values()))
    return {
        **{k: headline[k] for k in ("fp32_step_s", "smx_step_s", "mx_step_s", "smx_over_fp32")},
        "saved_bytes": {v: headline["saved_bytes"][v]["total"] for v in VARIANTS},
        "configs": results,
        "fp32_function_overhead": fp32_overhead(overhead_rows, repeats=repeats),
        "forward_product": forward_product(rows=5 * overhead_rows, repeats=repeats),
        "int12_backward_products": int12_products(rows=5 * overhead_rows, repeats=repeats),
        "settings": {
            "presets": list(PRESETS),
            "variants": {
                name: "the full-pipeline file" if v.pipeline else list(v.changes)
                for name, v in VARIANTS.items()
            },
            "overrides": list(overrides),
            "repeats": repeats,
            "fast_path": fastpath.available(),
            "kernels": fastpath.describe(),
            "threads": torch.get_num_threads(),
            "machine": machine_info(),
            "loadavg_before": load_before,
            "loadavg_after": load_average(),
        },
    }
