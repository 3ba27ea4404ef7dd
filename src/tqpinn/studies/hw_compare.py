"""PINTA running the paper's full pipeline vs FP32-autodiff baselines, per benchmark problem.

For each problem two real training steps are traced: the baseline (``<problem>_fp32_ad.yaml``:
FP32, autodiff, dense) and the full pipeline (``<problem>_smx_se_tt.yaml``: Stein with
difference streams (DiffQuant), TT layers contracted by PRS, smx_paper), exactly the configs
that ``tqpinn reproduce --budget paper`` trains as its "FP32-AD dense" and "Full pipeline (PRS)"
variants. The baseline is costed on every platform of ``platforms.yaml`` and on this machine
(roofline with measured rates, and the measured wall time of the step); the pipeline on PINTA.
Speedup and energy saving are per step (both recipes run the same number of steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqpinn.errors import UserError
from tqpinn.hw.hardware import Hardware
from tqpinn.hw.pinta import Pinta
from tqpinn.hw.platforms import load_platforms, measure_this_machine, roofline
from tqpinn.hw.report import THIS_MACHINE
from tqpinn.hw.steps import StepRunner
from tqpinn.machine import load_average, machine_info
from tqpinn.train.config import Config, load_config

PAPER_SPEEDUP = (5.5, 83.5)
PAPER_ENERGY_SAVING = (159.6, 2324.1)
"""The seed paper's reported ranges over its three problems (PAPER_NOTES.md section 1)."""


@dataclass(frozen=True)
class Case:
    """One problem: its baseline and full-pipeline config files."""

    problem: str

    @property
    def baseline(self) -> str:
        return f"{self.problem}_fp32_ad.yaml"

    @property
    def pipeline(self) -> str:
        return f"{self.problem}_smx_se_tt.yaml"


CASES: tuple[Case, ...] = (Case("poisson2d"), Case("heat100d"), Case("hjb20d"))
"""The paper's three problems."""


def case_configs(case: Case, configs_dir: Path) -> tuple[Config, Config]:
    """(baseline, full pipeline) configs of ``case`` from ``configs_dir``."""
    return load_config(configs_dir / case.baseline), load_config(configs_dir / case.pipeline)


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
    baseline_config, pipeline_config = case_configs(case, configs_dir)
    baseline = StepRunner.build(baseline_config)
    baseline_trace = baseline.trace()
    pipeline_trace = StepRunner.build(pipeline_config).trace()
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
        "quant": pipeline_config.quant.given,
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
    load_before = load_average()
    problems = [compare_case(c, hw, configs_dir, measure, trace_dir) for c in cases]
    return {
        "hardware": hw.name,
        "paper": {"speedup": PAPER_SPEEDUP, "energy_saving": PAPER_ENERGY_SAVING},
        "problems": problems,
        # Measured figures (this machine) are only as good as the machine was idle.
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "machine": machine_info(),
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
    return "\n".join(lines)
