"""Cost one config's training step: trace it, run PINTA, and the baseline rooflines on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqpinn.hw.hardware import Hardware
from tqpinn.hw.pinta import Pinta, PintaReport
from tqpinn.hw.platforms import load_platforms, measure_this_machine, roofline
from tqpinn.hw.steps import StepRunner
from tqpinn.hw.trace import Trace
from tqpinn.machine import load_average, machine_info
from tqpinn.train.config import load_config

THIS_MACHINE = "this_machine"


def cost_config(
    config_path: Path, overrides: list[str], hw: Hardware, measure: bool = True
) -> tuple[dict[str, Any], Trace, PintaReport]:
    """Trace one steady-state step of the config and cost it on PINTA and on every platform.

    With ``measure``, this machine is added as a platform (its rates measured) and the step's
    wall time here is measured too. Returns (JSON-ready result, trace, PINTA report).
    """
    runner = StepRunner.build(load_config(config_path, overrides))
    trace = runner.trace()
    report = Pinta(hw).run(trace)
    platforms, flops_per_element = load_platforms()
    if measure:
        platforms = {**platforms, THIS_MACHINE: measure_this_machine()}
    result: dict[str, Any] = {
        "config": str(config_path),
        "overrides": overrides,
        "trace": trace.summary() | {"meta": trace.meta},
        "pinta": report.summary(),
        "platforms": {
            name: roofline(name, p, trace, flops_per_element).summary()
            for name, p in platforms.items()
        },
    }
    if measure:
        result["this_machine_measured_step_s"] = runner.wall_seconds(repeats=2)
        result["loadavg"] = load_average()
        result["machine"] = machine_info()
    return result, trace, report
