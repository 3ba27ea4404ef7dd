"""Design-space sweep: saved training-step traces re-costed over hardware and workload points.

``tqpinn hw --sweep SPEC --out DIR``. For each problem of the spec the baseline step (saved by
``tqpinn hw --compare``) is costed once per baseline platform (roofline or measured); every
design point (:func:`tqpinn.hw.sweep_spec.design_points`) costs its workload's trace on its
PINTA description. Workloads: the saved Stein, Taylor and stencil full pipelines, and the Stein
pipeline re-traced at other pair counts (cached in ``DIR/traces``). Writes ``DIR/sweep.json``
(points, costs, Pareto fronts, the smallest change reaching the targets) and one
``DIR/pareto_<problem>.png`` per problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tqpinn.errors import UserError
from tqpinn.hw.area import DEFAULT_BRICKS_PER_PE, load_area_model
from tqpinn.hw.hardware import DEFAULT_HARDWARE, hardware_from_dict
from tqpinn.hw.measured import MeasuredPlatform, load_measured, measured_estimate
from tqpinn.hw.pareto import Candidate, closest, pareto_front, smallest_change
from tqpinn.hw.pinta import Pinta, PintaReport
from tqpinn.hw.platforms import Platform, load_platforms, roofline
from tqpinn.hw.plot import plot_pareto
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.sweep_spec import (
    BRICKS,
    ESTIMATOR,
    STEIN_PAIRS,
    SweepSpec,
    check_parameters,
    design_points,
    hardware_at,
)
from tqpinn.hw.trace import Trace
from tqpinn.machine import load_average, machine_info
from tqpinn.studies.hw_compare import BASELINE_VARIANT, BUDGET, CASES, PIPELINES, trace_name
from tqpinn.studies.reproduce import variant_configs
from tqpinn.studies.reproduce.variants import VARIANTS_BY_KEY
from tqpinn.train.config import Config, config_from_dict

Log = Callable[[str], None]


def _base_description(spec: SweepSpec) -> tuple[dict[str, Any], str]:
    if spec.hardware is None:
        text = resources.files("tqpinn.hw").joinpath(DEFAULT_HARDWARE).read_text()
        return yaml.safe_load(text), DEFAULT_HARDWARE
    if not spec.hardware.is_file():
        raise UserError(f"hardware file not found: {spec.hardware}")
    data = yaml.safe_load(spec.hardware.read_text(encoding="utf-8"))
    hardware_from_dict(data, str(spec.hardware))
    return data, str(spec.hardware)


def _variant_config(spec: SweepSpec, problem: str, variant: str) -> Config:
    return variant_configs(BUDGET, problem, [VARIANTS_BY_KEY[variant]], spec.configs)[variant]


def _load_trace(spec: SweepSpec, problem: str, estimator: str | None = None) -> Trace:
    """The trace `tqpinn hw --compare` saved for ``problem``'s baseline (``estimator`` None) or
    pipeline, checked against the config the configs folder gives today: a trace of another
    config (the configs changed since) is a UserError, never costed silently."""
    path = spec.traces / trace_name(problem, estimator)
    again = f"save the traces again with `tqpinn hw --compare --out {path.parent}`"
    if not path.is_file():
        raise UserError(f"trace {path} not found; {again}")
    trace = Trace.load(path)
    variant = BASELINE_VARIANT if estimator is None else PIPELINES[estimator]
    if trace.meta.get("config_sha256") != _variant_config(spec, problem, variant).digest():
        raise UserError(f"trace {path} was recorded for another config than today's; {again}")
    return trace


def stein_trace(spec: SweepSpec, problem: str, pairs: int, cache: Path, log: Log) -> Trace:
    """The Stein full pipeline of ``problem`` at ``pairs`` pairs: saved, or traced and saved.
    The file name carries the config's digest, so a changed config is traced anew."""
    data = _variant_config(spec, problem, PIPELINES["stein"]).to_dict()
    data["estimator"]["pairs"] = pairs
    config = config_from_dict(data)
    name = f"{problem}_pipeline_stein_pairs{pairs}_{config.digest()[:12]}.json"
    for directory in (spec.traces, cache):
        if (directory / name).is_file():
            return Trace.load(directory / name)
    log(f"  tracing {problem} Stein pipeline at {pairs} pairs")
    trace = StepRunner.build(config).trace()
    cache.mkdir(parents=True, exist_ok=True)
    trace.save(cache / name)
    return trace


def _workload(point: dict[str, Any]) -> tuple[str, int | None]:
    return point.get(ESTIMATOR, "stein"), point.get(STEIN_PAIRS)


def _changes(point: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The point's parameters that differ from the default description and workload."""
    defaults = {ESTIMATOR: "stein", STEIN_PAIRS: None, BRICKS: DEFAULT_BRICKS_PER_PE}
    out = {}
    for key, value in point.items():
        if key in defaults:
            default = defaults[key]
        else:
            default = base
            for part in key.split("."):
                default = default[part]
        if value != default:
            out[key] = value
    return out


def _baselines(
    names: list[str],
    problem: str,
    baseline: Trace,
    rooflines: dict[str, Platform],
    flops_per_element: dict[str, float],
    measured: dict[str, MeasuredPlatform],
) -> dict[str, tuple[float, float | None]]:
    """Baseline -> (seconds, joules) of the baseline step; measured platforms without a
    measurement for this problem are left out."""
    out: dict[str, tuple[float, float | None]] = {}
    for name in names:
        if name in rooflines:
            est = roofline(name, rooflines[name], baseline, flops_per_element)
            out[name] = (est.seconds, est.energy_j)
            continue
        got = measured_estimate(measured[name], problem, BASELINE_VARIANT, rooflines)
        if got is not None:
            out[name] = (got.seconds, got.energy_j)
    return out


def _targets_table(
    candidates: list[Candidate], targets: dict[str, float], has_energy: bool
) -> dict[str, Any]:
    """Per goal (both targets, speed alone, energy alone) the smallest change that reaches it,
    or None; ``best_balanced``: the point whose worse ratio to its target is largest."""
    t_s, t_e = targets["speedup"], targets["energy_saving"] if has_energy else None
    goals = {"both": (t_s, t_e), "speedup": (t_s, None), "energy_saving": (None, t_e)}
    out: dict[str, Any] = {}
    for goal, (s, e) in goals.items():
        if goal == "energy_saving" and e is None:
            continue
        found = smallest_change(candidates, s, e)
        out[goal] = None if found is None else found.summary()
    out["best_balanced"] = closest(candidates, t_s, t_e).summary()
    return out


def _what_it_takes(
    candidates: list[Candidate], targets: dict[str, float], has_energy: bool
) -> dict[str, Any]:
    """The target search over every point, and over the points that keep the recipe's
    workload (Stein at its own pairs): hardware changes alone."""
    same_work = [c for c in candidates if not set(c.changes) & {ESTIMATOR, STEIN_PAIRS}]
    return {
        "any_change": _targets_table(candidates, targets, has_energy),
        "hardware_only": _targets_table(same_work, targets, has_energy) if same_work else None,
    }


def _workload_traces(
    spec: SweepSpec, problem: str, points: list[dict[str, Any]], cache: Path, log: Log
) -> dict[tuple[str, int | None], Trace]:
    """(estimator, Stein pairs or None) -> its trace, for every workload the points use."""
    workloads: dict[tuple[str, int | None], Trace] = {}
    for point in points:
        estimator, pairs = _workload(point)
        if (estimator, pairs) not in workloads:
            workloads[(estimator, pairs)] = (
                _load_trace(spec, problem, estimator)
                if pairs is None
                else stein_trace(spec, problem, pairs, cache, log)
            )
    return workloads


def _baseline_entry(
    base_s: float,
    base_j: float | None,
    seconds: list[float],
    energy: list[float],
    default: PintaReport,
    changes: list[dict[str, Any]],
    areas: list[dict[str, float]],
    targets: dict[str, float],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One baseline's record (default gains, target search, Pareto front) and its plot panel
    (None without a baseline energy)."""
    speedup = [base_s / s for s in seconds]
    saving = [None if base_j is None else base_j / e for e in energy]
    candidates = [
        Candidate(i, changes[i], speedup[i], saving[i], areas[i]["total"])
        for i in range(len(seconds))
    ]
    entry: dict[str, Any] = {
        "seconds": base_s,
        "energy_j": base_j,
        "default": {
            "speedup": base_s / default.seconds,
            "energy_saving": None if base_j is None else base_j / default.energy_j,
        },
        "what_it_takes": _what_it_takes(candidates, targets, base_j is not None),
    }
    if base_j is None:
        return entry, None
    entry["pareto_front"] = pareto_front(speedup, saving)
    panel = {
        "speedup": speedup,
        "saving": saving,
        "area": [a["total"] for a in areas],
        "front": entry["pareto_front"],
        "default": (entry["default"]["speedup"], entry["default"]["energy_saving"]),
    }
    return entry, panel


def sweep(spec: SweepSpec, origin: str, out: Path, log: Log = print) -> dict[str, Any]:
    """Cost every design point of ``spec`` on every problem; write JSON and plots to ``out``."""
    base, base_origin = _base_description(spec)
    check_parameters(spec, base, origin)
    known = [c.problem for c in CASES]
    for problem in spec.problems:
        if problem not in known:
            raise UserError(f"{origin}: unknown problem {problem!r}; choose from {known}")
    rooflines, flops_per_element = load_platforms()
    measured = load_measured(list(spec.timings))
    valid = [*rooflines, *measured]
    for name in spec.baselines:
        if name not in valid:
            raise UserError(f"{origin}: unknown baseline {name!r}; choose from {valid}")
    points = design_points(spec)
    hardware = [hardware_at(base, p, f"{origin}: point {p}") for p in points]
    area_model = load_area_model()
    areas = [
        area_model.area_mm2(hw, p.get(BRICKS, DEFAULT_BRICKS_PER_PE))
        for hw, p in zip(hardware, points, strict=True)
    ]
    changes = [_changes(p, base) for p in points]
    default_hw = hardware_at(base, {}, base_origin)
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    log(f"sweep: {len(points)} design points x {len(spec.problems)} problems")
    problems: dict[str, Any] = {}
    for problem in spec.problems:
        baseline = _load_trace(spec, problem)
        workloads = _workload_traces(spec, problem, points, out / "traces", log)
        log(f"  {problem}: costing {len(points)} points")
        seconds, energy = [], []
        for hw, point in zip(hardware, points, strict=True):
            report = Pinta(hw).run(workloads[_workload(point)])  # not kept: per-GEMM detail
            seconds.append(report.seconds)
            energy.append(report.energy_j)
        recipe = workloads.get(("stein", None))
        if recipe is None:
            recipe = _load_trace(spec, problem, "stein")
        default = Pinta(default_hw).run(recipe)
        per_baseline: dict[str, Any] = {}
        panels: dict[str, Any] = {}
        costs = _baselines(
            spec.baselines, problem, baseline, rooflines, flops_per_element, measured
        )
        for name, (base_s, base_j) in costs.items():
            per_baseline[name], panel = _baseline_entry(
                base_s, base_j, seconds, energy, default, changes, areas, spec.targets
            )
            if panel is not None:
                panels[name] = panel
        if panels:
            plot_pareto(
                out / f"pareto_{problem}.png",
                f"{problem}: PINTA design points vs the FP32-autodiff step",
                panels,
                (spec.targets["speedup"], spec.targets["energy_saving"]),
            )
        problems[problem] = {
            "pinta_seconds": seconds,
            "pinta_energy_j": energy,
            "default_pinta": {"seconds": default.seconds, "energy_j": default.energy_j},
            "baselines": per_baseline,
        }
    result = {
        "spec": json.loads(spec.model_dump_json()),
        "hardware": base_origin,
        "points": points,
        "changes": changes,
        "area_mm2": areas,
        "area_model": area_model.model_dump(),
        "problems": problems,
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
        "machine": machine_info(),
    }
    (out / "sweep.json").write_text(json.dumps(result) + "\n")
    return result


def _verdict(table: dict[str, Any]) -> str:
    both = table["both"]
    if both is not None:
        return f"reached with {both['changes']} ({both['area_mm2']:.3g} mm²)"
    best = table["best_balanced"]
    saving = "n/a" if best["energy_saving"] is None else f"{best['energy_saving']:.3g}x"
    return f"not reached, at best {best['speedup']:.3g}x / {saving} with {best['changes']}"


def format_summary(result: dict[str, Any]) -> str:
    """Per problem and baseline: the default design's gains and what it takes to reach the
    targets (the smallest change, or the closest point when none reaches them)."""
    targets = result["spec"]["targets"]
    lines = [
        f"{len(result['points'])} design points; targets: speedup {targets['speedup']}x, "
        f"energy saving {targets['energy_saving']}x"
    ]
    for problem, p in result["problems"].items():
        for name, b in p["baselines"].items():
            d = b["default"]
            saving = "n/a" if d["energy_saving"] is None else f"{d['energy_saving']:.3g}x"
            verdict = "; ".join(
                f"{scope}: {_verdict(table)}"
                for scope, table in b["what_it_takes"].items()
                if table is not None
            )
            lines.append(
                f"{problem:<10} {name:<16} default {d['speedup']:.3g}x / {saving}: {verdict}"
            )
    return "\n".join(lines)
