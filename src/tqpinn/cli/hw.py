"""``tqpinn hw``: trace a training step and cost it on PINTA and the baseline platforms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tqpinn.errors import UserError


def _single_config_table(result: dict[str, Any]) -> str:
    step, run = result["pinta"]["step"], result["pinta"]["run"]
    lines = [
        f"trace: {result['trace']['gemms']} GEMMs ({result['trace']['gemm_flops'] / 1e9:.3g} "
        f"GFLOP), {result['trace']['elementwise_kernels']} element-wise kernels",
        f"PINTA ({result['pinta']['hardware']}): {step['seconds'] * 1e3:.4g} ms and "
        f"{step['energy_j'] * 1e3:.4g} mJ per step; {run['seconds']:.4g} s and "
        f"{run['energy_j']:.4g} J for {run['steps']} steps; array utilisation "
        f"{step['array_utilisation']:.1%}",
        "  cycles: " + ", ".join(f"{k} {v:.4g}" for k, v in step["cycles_breakdown"].items()),
        "  energy (mJ): "
        + ", ".join(f"{k} {v * 1e3:.3g}" for k, v in step["energy_breakdown_j"].items()),
        "  GEMMs bound by: " + ", ".join(f"{k} {v}" for k, v in step["gemm_bounds"].items()),
        "",
        f"{'the same step on':<34} {'ms':>9} {'mJ':>10} {'PINTA speedup':>14}",
    ]
    for name, row in result["platforms"].items():
        energy = "n/a" if row["energy_j"] is None else f"{row['energy_j'] * 1e3:.4g}"
        lines.append(
            f"{name:<34} {row['seconds'] * 1e3:>9.4g} {energy:>10} "
            f"{row['seconds'] / step['seconds']:>13.3g}x"
        )
    return "\n".join(lines)


def hw_command(
    config: Annotated[
        Path | None, typer.Option(help="Config whose training step is traced and costed.")
    ] = None,
    hardware: Annotated[
        Path | None, typer.Option(help="Hardware YAML (default: the packaged PINTA default).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write JSON (and the trace and energy plot) here.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Config override: key.sub=value (YAML).")
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Full pipeline on PINTA vs FP32-autodiff baselines, per problem."
        ),
    ] = False,
    configs: Annotated[
        Path, typer.Option(help="Directory of the recipe configs (--compare).")
    ] = Path("configs"),
    measure: Annotated[
        bool, typer.Option(help="Also measure this machine (micro-benchmarks, step wall time).")
    ] = True,
    sweep: Annotated[
        Path | None,
        typer.Option(help="Sweep spec YAML: re-cost saved traces over design points (--out)."),
    ] = None,
    timings: Annotated[
        list[Path] | None,
        typer.Option(help="Timing file of a measured platform (--compare; repeatable)."),
    ] = None,
) -> None:
    """Cost a real training step on the PINTA accelerator model and baseline platforms."""
    from tqpinn.hw.hardware import load_hardware

    if [config is not None, compare, sweep is not None].count(True) != 1:
        raise UserError(
            "give one of --config FILE (one step), --compare (the three problems) "
            "or --sweep SPEC (a design-space sweep)"
        )
    if sweep is not None:
        from tqpinn.hw.sweep_spec import load_spec
        from tqpinn.studies.hw_sweep import format_summary
        from tqpinn.studies.hw_sweep import sweep as run_sweep

        if hardware is not None:
            raise UserError("--sweep takes its base description from the spec's 'hardware' key")
        if out is None:
            raise UserError("--sweep needs --out DIR (it writes sweep.json and plots there)")
        result = run_sweep(load_spec(sweep), str(sweep), out)
        print(format_summary(result))
        return
    hw = load_hardware(hardware)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if compare:
        from tqpinn.hw.measured import MeasuredPlatform, load_measured
        from tqpinn.studies.hw_compare import THIS_MACHINE_MEASURED, format_table
        from tqpinn.studies.hw_compare import compare as run_compare

        measured = load_measured(list(timings or []))
        result = run_compare(hw, configs, measure=measure, trace_dir=out, measured=measured)
        print(format_table(result))
        if out is not None:
            (out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
            if measure:
                here = result["measured_platforms"][THIS_MACHINE_MEASURED]
                timing = MeasuredPlatform.model_validate(here).to_yaml()
                (out / "this_machine_timing.yaml").write_text(timing)
        return
    from tqpinn.hw.report import cost_config

    result, trace, report = cost_config(config, list(set_ or []), hw, measure=measure)
    print(_single_config_table(result))
    if out is not None:
        from tqpinn.hw.plot import plot_energy_breakdown

        (out / "hw.json").write_text(json.dumps(result, indent=2) + "\n")
        trace.save(out / "trace.json")
        plot_energy_breakdown(report, out / "energy_breakdown.png")
