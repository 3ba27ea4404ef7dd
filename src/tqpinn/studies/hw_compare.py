"""PINTA running the paper's full pipeline vs FP32-autodiff baselines, per benchmark problem.

For each problem two real training steps are traced: the baseline (FP32, autodiff, dense: the
``*_fp32_ad`` recipe) and the full pipeline (Stein with difference streams (DiffQuant), TT
hidden layers contracted by PRS, SMX quantization). The baseline is costed on every platform of
``platforms.yaml`` and on this machine (roofline with measured rates, and the measured wall
time of the step); the pipeline on PINTA. Speedup and energy saving are per step (both recipes
run the same number of steps).

When this build's config does not accept ``quant: smx_paper`` yet, the pipeline step is traced
in FP32 and its GEMM operand formats are set from the ``smx_paper`` QuantSpec afterwards (the
shapes do not depend on the formats); the result says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqpinn.errors import UserError
from tqpinn.hw.hardware import Hardware
from tqpinn.hw.pinta import Pinta
from tqpinn.hw.platforms import load_platforms, measure_this_machine, roofline
from tqpinn.hw.report import THIS_MACHINE
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.trace import GemmRecord, Trace
from tqpinn.train.config import Config, apply_overrides, config_from_dict, read_yaml

PAPER_SPEEDUP = (5.5, 83.5)
PAPER_ENERGY_SAVING = (159.6, 2324.1)
"""The seed paper's reported ranges over its three problems (PAPER_NOTES.md section 1)."""


@dataclass(frozen=True)
class Case:
    """One problem: the baseline recipe and how the full pipeline is made from a recipe."""

    problem: str
    baseline: str
    pipeline: str
    pipeline_set: tuple[str, ...]
    quant: str = "smx_paper"


_DIFFQUANT = "estimator.diffquant=full"
_TT_HIDDEN = "model.tt={layers: [1, 2], ranks: 2, plan: partial, groups: 2}"

CASES: tuple[Case, ...] = (
    Case("poisson2d", "poisson2d_fp32_ad.yaml", "poisson2d_fp32_se.yaml", (_DIFFQUANT, _TT_HIDDEN)),
    Case("heat100d", "heat100d_fp32_ad.yaml", "heat100d_fp32_se.yaml", (_DIFFQUANT, _TT_HIDDEN)),
    Case(
        "hjb20d",
        "hjb20d_fp32_ad.yaml",
        "hjb20d_fp32_se_tt.yaml",
        (_DIFFQUANT, "model.tt.plan=partial", "model.tt.groups=2"),
    ),
)
"""The paper's three problems. The pipeline's TT layers: the hidden 256x256 layers at rank 2
(Poisson, Heat) and the prior TT-PINN network (HJB), all contracted by PRS with two groups."""


def pipeline_config(case: Case, configs_dir: Path) -> tuple[Config, bool]:
    """The full-pipeline config of ``case`` and whether its formats must be set after tracing
    (True when the config does not accept the quant preset)."""
    data = apply_overrides(read_yaml(configs_dir / case.pipeline), list(case.pipeline_set))
    try:
        return config_from_dict(apply_overrides(data, [f"quant={case.quant}"])), False
    except UserError:
        return config_from_dict(data), True


def with_spec_formats(trace: Trace, quant: str) -> Trace:
    """``trace`` with every qops GEMM's operand formats taken from the named QuantSpec preset
    (forward: fwd.input x fwd.weight; dgrad: dgrad.grad_output x dgrad.weight; wgrad:
    wgrad.grad_output x wgrad.input)."""
    from tqpinn.quant.spec import PRESETS

    spec = PRESETS[quant]
    roles = {
        "forward": (spec.fwd_input, spec.fwd_weight),
        "dgrad": (spec.dgrad_grad_output, spec.dgrad_weight),
        "wgrad": (spec.wgrad_grad_output, spec.wgrad_input),
    }

    def convert(g: GemmRecord) -> GemmRecord:
        if not g.routed:
            return g
        a, b = roles[g.phase]
        return replace(
            g,
            a_format=a.name,
            b_format=b.name,
            a_bits=a.fmt.bits,
            b_bits=b.fmt.bits,
            block=a.fmt.block,
        )

    return replace(
        trace, gemms=[convert(g) for g in trace.gemms], meta={**trace.meta, "quant": quant}
    )


def compare_case(
    case: Case,
    hw: Hardware,
    configs_dir: Path,
    measure: bool = True,
    trace_dir: Path | None = None,
) -> dict[str, Any]:
    """Trace both steps of ``case`` and cost them; a JSON-ready record. With ``trace_dir``,
    the two traces are saved there (``{problem}_baseline.json``, ``{problem}_pipeline.json``)
    so that other hardware descriptions can cost them later without tracing again."""
    baseline = StepRunner.build(config_from_dict(read_yaml(configs_dir / case.baseline)))
    baseline_trace = baseline.trace()
    cfg, retargeted = pipeline_config(case, configs_dir)
    pipeline_trace = StepRunner.build(cfg).trace()
    if retargeted:
        pipeline_trace = with_spec_formats(pipeline_trace, case.quant)
    if trace_dir is not None:
        baseline_trace.save(trace_dir / f"{case.problem}_baseline.json")
        pipeline_trace.save(trace_dir / f"{case.problem}_pipeline.json")
    pinta = Pinta(hw).run(pipeline_trace)
    platforms, flops_per_element = load_platforms()
    if measure:
        platforms = {**platforms, THIS_MACHINE: measure_this_machine()}
    estimates = {
        name: roofline(name, p, baseline_trace, flops_per_element) for name, p in platforms.items()
    }
    rows = {
        name: {
            **e.summary(),
            "speedup": e.seconds / pinta.seconds,
            "energy_saving": None if e.energy_j is None else e.energy_j / pinta.energy_j,
        }
        for name, e in estimates.items()
    }
    out: dict[str, Any] = {
        "problem": case.problem,
        "baseline_config": case.baseline,
        "pipeline_config": case.pipeline,
        "pipeline_set": list(case.pipeline_set),
        "quant": case.quant,
        "formats_set_after_tracing": retargeted,
        "baseline_trace": baseline_trace.summary() | {"meta": baseline_trace.meta},
        "pipeline_trace": pipeline_trace.summary() | {"meta": pipeline_trace.meta},
        "pinta": pinta.summary(),
        "baselines": rows,
    }
    if measure:
        wall = baseline.wall_seconds(repeats=2)
        out["this_machine_measured_step_s"] = wall
        out["this_machine_roofline_over_measured"] = rows[THIS_MACHINE]["seconds"] / wall
    return out


def compare(
    hw: Hardware,
    configs_dir: Path,
    cases: tuple[Case, ...] = CASES,
    measure: bool = True,
    trace_dir: Path | None = None,
) -> dict[str, Any]:
    """:func:`compare_case` over ``cases``, with the paper's ranges for reference."""
    for case in cases:
        for name in (case.baseline, case.pipeline):
            if not (configs_dir / name).is_file():
                raise UserError(
                    f"config {configs_dir / name} not found; run from the repository root or "
                    "pass --configs DIR (the directory with the recipe configs)"
                )
    load_before = os.getloadavg()
    problems = [compare_case(c, hw, configs_dir, measure, trace_dir) for c in cases]
    return {
        "hardware": hw.name,
        "paper": {"speedup": PAPER_SPEEDUP, "energy_saving": PAPER_ENERGY_SAVING},
        "problems": problems,
        # Measured figures (this machine) are only as good as the machine was idle.
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def format_table(result: dict[str, Any]) -> str:
    """Per problem and platform: our speedup and energy saving beside the paper's ranges."""
    lo_s, hi_s = result["paper"]["speedup"]
    lo_e, hi_e = result["paper"]["energy_saving"]
    lines = [
        f"PINTA ({result['hardware']}) running the full pipeline vs the FP32-autodiff step",
        f"paper (baseline platform not stated): speedup {lo_s}x-{hi_s}x, "
        f"energy saving {lo_e}x-{hi_e}x",
        "",
        f"{'problem':<10} {'baseline platform':<34} {'base ms':>9} {'PINTA ms':>9} "
        f"{'speedup':>9} {'base mJ':>10} {'PINTA mJ':>9} {'saving':>9}",
    ]
    for p in result["problems"]:
        pinta = p["pinta"]["step"]
        for name, row in p["baselines"].items():
            energy = "n/a" if row["energy_j"] is None else f"{row['energy_j'] * 1e3:.3g}"
            saving = "n/a" if row["energy_saving"] is None else f"{row['energy_saving']:.3g}x"
            lines.append(
                f"{p['problem']:<10} {name:<34} {row['seconds'] * 1e3:>9.3g} "
                f"{pinta['seconds'] * 1e3:>9.3g} {row['speedup']:>8.3g}x {energy:>10} "
                f"{pinta['energy_j'] * 1e3:>9.3g} {saving:>9}"
            )
        if "this_machine_measured_step_s" in p:
            measured = p["this_machine_measured_step_s"]
            lines.append(
                f"{'':<10} {'this machine, measured wall time':<34} {measured * 1e3:>9.3g} "
                f"{pinta['seconds'] * 1e3:>9.3g} {measured / pinta['seconds']:>8.3g}x"
            )
        if p["formats_set_after_tracing"]:
            lines.append(
                f"{'':<10} (pipeline traced in FP32, GEMM formats set to {p['quant']} after "
                "tracing: this build's config has no quantized training yet)"
            )
    return "\n".join(lines)
