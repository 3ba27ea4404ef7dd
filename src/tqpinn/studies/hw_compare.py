"""PINTA running the paper's pipelines vs FP32-autodiff baselines, per benchmark problem.

For each problem, four real training steps are traced, each the config that ``tqpinn reproduce
--budget paper`` trains as one row of its ablation (:func:`tqpinn.studies.reproduce.
variant_configs`, so the networks are the same by construction): the baseline "FP32-AD dense"
(FP32, autodiff, dense) and the full pipeline (smx_paper, TT layers contracted by PRS) with each
forward-only estimator: Stein with DiffQuant (2K + 1 rows per point), Taylor (C + 2 rows: the
value, C first-order terms, one collapsed second-order term) and the central-difference stencil
with DiffQuant (2C + 1 rows). The baseline is costed on every roofline platform of
``platforms.yaml`` (and this machine's measured roofline) and on every measured platform
(timing files: the packaged H100 figures, this machine's step timed on the spot, any other
given); each measured row reports its roofline twin's error. The pipelines run on PINTA.
Speedup and energy saving are per step (every recipe runs the same number of steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import UserError
from tqpinn.hw.hardware import Hardware
from tqpinn.hw.measured import MeasuredPlatform, load_measured, measured_estimate
from tqpinn.hw.pinta import Pinta, PintaReport
from tqpinn.hw.platforms import Platform, load_platforms, measure_this_machine, roofline
from tqpinn.hw.report import THIS_MACHINE
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.trace import Trace
from tqpinn.machine import cpu_info, load_average, machine_info
from tqpinn.studies.reproduce import variant_configs
from tqpinn.studies.reproduce.recipes import pipeline_file
from tqpinn.studies.reproduce.variants import VARIANTS_BY_KEY
from tqpinn.train.config import Config

PAPER_SPEEDUP = (5.5, 83.5)
PAPER_ENERGY_SAVING = (159.6, 2324.1)
"""The seed paper's reported ranges over its three problems (PAPER_NOTES.md section 1)."""

BASELINE_VARIANT = "fp32_ad_dense"
PIPELINES = {
    "stein": "full_pipeline",
    "taylor": "full_pipeline_taylor",
    "stencil": "full_pipeline_stencil",
}
"""Estimator -> the reproduce variant of the full pipeline that uses it."""

THIS_MACHINE_MEASURED = "this_machine_measured"
BUDGET = "paper"


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


def trace_name(problem: str, estimator: str | None = None) -> str:
    """File name of a saved trace: the baseline (``estimator`` None) or a pipeline's."""
    if estimator is None:
        return f"{problem}_baseline.json"
    return (
        f"{problem}_pipeline.json"
        if estimator == "stein"
        else f"{problem}_pipeline_{estimator}.json"
    )


def case_configs(case: Case, configs_dir: Path) -> tuple[Config, Config]:
    """(baseline, Stein full pipeline) configs of ``case``: the reproduce variants."""
    configs = variant_configs(BUDGET, case.problem, configs_dir=configs_dir)
    return configs[BASELINE_VARIANT], configs[PIPELINES["stein"]]


@dataclass
class CaseTraces:
    """The traced steps of one problem, their PINTA costs and the baseline's wall time here."""

    problem: str
    baseline: Trace
    pipelines: dict[str, Trace]
    pinta: dict[str, PintaReport]
    measured_here_s: float | None


def trace_case(
    case: Case,
    hw: Hardware,
    configs_dir: Path,
    measure: bool = True,
    trace_dir: Path | None = None,
) -> CaseTraces:
    """Trace the baseline and every pipeline of ``case``, cost the pipelines on PINTA; with
    ``measure`` time the baseline step here; with ``trace_dir`` save the traces there
    (:func:`trace_name`) so that other hardware can cost them later without tracing again."""
    keys = [BASELINE_VARIANT, *PIPELINES.values()]
    configs = variant_configs(BUDGET, case.problem, [VARIANTS_BY_KEY[k] for k in keys], configs_dir)
    baseline_runner = StepRunner.build(configs[BASELINE_VARIANT])
    baseline = baseline_runner.trace()
    pipelines = {e: StepRunner.build(configs[v]).trace() for e, v in PIPELINES.items()}
    if trace_dir is not None:
        baseline.save(trace_dir / trace_name(case.problem))
        for estimator, trace in pipelines.items():
            trace.save(trace_dir / trace_name(case.problem, estimator))
    model = Pinta(hw)
    return CaseTraces(
        case.problem,
        baseline,
        pipelines,
        {e: model.run(t) for e, t in pipelines.items()},
        baseline_runner.wall_seconds(repeats=2) if measure else None,
    )


def _gains(seconds: float, energy_j: float | None, pinta: dict[str, PintaReport]) -> dict:
    return {
        "speedup": {e: seconds / r.seconds for e, r in pinta.items()},
        "energy_saving": {
            e: None if energy_j is None else energy_j / r.energy_j for e, r in pinta.items()
        },
    }


def baseline_rows(
    traced: CaseTraces,
    rooflines: dict[str, Platform],
    flops_per_element: dict[str, float],
    measured: dict[str, MeasuredPlatform],
) -> dict[str, dict[str, Any]]:
    """Platform -> the baseline step on it (roofline or measured) and PINTA's gains per
    pipeline; a measured row also gives its roofline twin's relative error."""
    rows: dict[str, dict[str, Any]] = {}
    for name, platform in rooflines.items():
        est = roofline(name, platform, traced.baseline, flops_per_element)
        rows[name] = {
            "kind": "roofline",
            "label": platform.label,
            **est.summary(),
            **_gains(est.seconds, est.energy_j, traced.pinta),
        }
    for name, platform in measured.items():
        est = measured_estimate(platform, traced.problem, BASELINE_VARIANT, rooflines)
        if est is None:
            continue
        row = {
            "kind": "measured",
            "label": platform.label,
            **est.summary(),
            **_gains(est.seconds, est.energy_j, traced.pinta),
        }
        if platform.roofline in rows:
            predicted = rows[platform.roofline]["seconds"]
            row |= {
                "roofline": platform.roofline,
                "roofline_seconds": predicted,
                "roofline_error": predicted / est.seconds - 1,
            }
        rows[name] = row
    return rows


def this_machine_timing(walls: dict[str, float]) -> MeasuredPlatform:
    """This machine's measured baseline steps as a measured platform (and a timing file)."""
    where = (
        f"{cpu_info().model}, {torch.get_num_threads()} threads, load average "
        f"{' '.join(f'{x:.2f}' for x in load_average())}: the median of 2 steps after warm-up"
    )
    return MeasuredPlatform(
        name=THIS_MACHINE_MEASURED,
        label="this machine, measured",
        roofline=THIS_MACHINE,
        steps={problem: {BASELINE_VARIANT: s} for problem, s in walls.items()},
        sources={"steps": f"tqpinn hw --compare --measure on {where}"},
    )


def _case_record(
    traced: CaseTraces, rows: dict[str, dict[str, Any]], configs_dir: Path
) -> dict[str, Any]:
    return {
        "problem": traced.problem,
        "config": str(pipeline_file(BUDGET, traced.problem, configs_dir)),
        "baseline_variant": BASELINE_VARIANT,
        "baseline_trace": traced.baseline.summary() | {"meta": traced.baseline.meta},
        "pipelines": {
            e: {
                "variant": PIPELINES[e],
                "trace": t.summary() | {"meta": t.meta},
                "pinta": traced.pinta[e].summary(),
            }
            for e, t in traced.pipelines.items()
        },
        "baselines": rows,
    }


def compare(
    hw: Hardware,
    configs_dir: Path,
    cases: tuple[Case, ...] = CASES,
    measure: bool = True,
    trace_dir: Path | None = None,
    measured: dict[str, MeasuredPlatform] | None = None,
) -> dict[str, Any]:
    """Every case traced and costed against every roofline and measured platform (default: the
    packaged timing files), with the paper's ranges for reference. With ``measure``, this
    machine is a roofline (its rates measured) and a measured platform (its baseline steps
    timed)."""
    for case in cases:
        path = pipeline_file(BUDGET, case.problem, configs_dir)
        if not path.is_file():
            raise UserError(
                f"config {path} not found; run from the repository root or "
                "pass --configs DIR (the directory with the recipe configs)"
            )
    load_before = load_average()
    rooflines, flops_per_element = load_platforms()
    if measure:
        rooflines = {**rooflines, THIS_MACHINE: measure_this_machine()}
    traced = [trace_case(c, hw, configs_dir, measure, trace_dir) for c in cases]
    measured = dict(load_measured() if measured is None else measured)
    if measure:
        here = this_machine_timing({t.problem: t.measured_here_s for t in traced})
        measured[here.name] = here
    problems = [
        _case_record(t, baseline_rows(t, rooflines, flops_per_element, measured), configs_dir)
        for t in traced
    ]
    return {
        "hardware": hw.name,
        "paper": {"speedup": PAPER_SPEEDUP, "energy_saving": PAPER_ENERGY_SAVING},
        "problems": problems,
        "measured_platforms": {n: m.model_dump() for n, m in measured.items()},
        # Measured figures (this machine) are only as good as the machine was idle.
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "machine": machine_info(),
    }


def _gain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}x"


def format_table(result: dict[str, Any]) -> str:
    """Per problem: PINTA's cost of each pipeline, then per baseline platform (roofline and
    measured) its step, PINTA's speedup / energy saving per pipeline and the roofline's error."""
    lo_s, hi_s = result["paper"]["speedup"]
    lo_e, hi_e = result["paper"]["energy_saving"]
    lines = [
        f"PINTA ({result['hardware']}) running the full pipelines vs the FP32-autodiff step",
        f"paper (baseline platform not stated): speedup {lo_s}x-{hi_s}x, "
        f"energy saving {lo_e}x-{hi_e}x",
    ]
    for p in result["problems"]:
        estimators = list(p["pipelines"])
        lines += ["", f"{p['problem']}: PINTA per step"]
        for e, pipe in p["pipelines"].items():
            step = pipe["pinta"]["step"]
            lines.append(
                f"  {e:<8} {step['seconds'] * 1e3:9.3g} ms {step['energy_j'] * 1e3:9.3g} mJ "
                f"{pipe['trace']['gemm_flops'] / 1e9:9.3g} GFLOP"
            )
        head = "".join(f" {e + ' speedup/saving':>24}" for e in estimators)
        lines.append(
            f"  {'baseline platform':<22} {'kind':<8} {'ms':>9} {'mJ':>9}{head} {'roofline err':>13}"
        )
        for name, row in p["baselines"].items():
            energy = "n/a" if row["energy_j"] is None else f"{row['energy_j'] * 1e3:.3g}"
            gains = "".join(
                f" {_gain(row['speedup'][e]) + ' / ' + _gain(row['energy_saving'][e]):>24}"
                for e in estimators
            )
            error = f"{row['roofline_error']:+.0%}" if "roofline_error" in row else ""
            lines.append(
                f"  {name:<22} {row['kind']:<8} {row['seconds'] * 1e3:>9.3g} {energy:>9}"
                f"{gains} {error:>13}"
            )
    return "\n".join(lines)
