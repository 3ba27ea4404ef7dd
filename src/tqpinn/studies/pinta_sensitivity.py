"""Which assumptions drive PINTA's speedup and energy saving: saved traces re-costed.

Each variant changes one group of parameters of the default PINTA description (or of the
baseline platforms) and costs the same traced steps again (no re-tracing, no timing: the numbers
are model outputs, deterministic). Speedup and energy saving are against the FP32-autodiff step
on each datasheet platform. The traces are those ``tqpinn hw --compare`` saves
(``<problem>_baseline.json``, ``<problem>_pipeline.json``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tqpinn.hw.hardware import DEFAULT_HARDWARE, Hardware, hardware_from_dict
from tqpinn.hw.pinta import Pinta
from tqpinn.hw.platforms import Platform, load_platforms, roofline
from tqpinn.hw.trace import Trace
from tqpinn.studies.hw_compare import CASES

DEFAULT_VARIANT = "default"
DATASHEET = "datasheet"
HARDWARE_VARIANTS: dict[str, dict[str, Any]] = {
    # name: dotted keys of the PINTA description -> value
    DEFAULT_VARIANT: {},
    "array 64x64": {"array.rows": 64, "array.cols": 64},
    "array 128x128": {"array.rows": 128, "array.cols": 128},
    "clock 1 GHz": {"clock_hz": 1.0e9},
    "DRAM 5 pJ/bit": {"dram.energy_pj_per_bit": 5},
    "buffer 8 MiB": {"sram.buffer_bytes": 8 * 2**20},
    "vector 64 lanes": {"vector.lanes": 64},
    "no element-wise fusion": {"vector.fused": False},
    "layer-by-layer schedule": {"schedule.tile_points": None},
}
BASELINE_VARIANTS: dict[str, dict[str, float]] = {
    # name: platform fields -> value; "power_scale" scales the platform's power
    DATASHEET: {},
    "kernel overhead 20 us": {"kernel_overhead_s": 20e-6},
    "board power 50% of TDP": {"power_scale": 0.5},
}


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for key in path:
        data = data[key]
    data[last] = value


def hardware_variant(changes: Mapping[str, Any]) -> Hardware:
    """The default PINTA description with ``changes`` (dotted keys) applied."""
    data = yaml.safe_load(resources.files("tqpinn.hw").joinpath(DEFAULT_HARDWARE).read_text())
    data = copy.deepcopy(data)
    for key, value in changes.items():
        _set(data, key, value)
    return hardware_from_dict(data, "variant")


def platform_variant(p: Platform, changes: Mapping[str, float]) -> Platform:
    """``p`` with ``changes`` applied (``power_scale`` multiplies its power, when it has one)."""
    update = {k: v for k, v in changes.items() if k != "power_scale"}
    if "power_scale" in changes and p.power_w is not None:
        update["power_w"] = p.power_w * changes["power_scale"]
    return p.model_copy(update=update)


def sensitivity(traces: Path) -> dict[str, Any]:
    """Per problem, one row ``"<hardware> | <baseline> | <platform>"`` per variant and platform,
    one assumption changed at a time: PINTA's and the baseline's seconds and joules per step,
    speedup and energy saving. A JSON-ready dict."""
    platforms, flops_per_element = load_platforms()
    results: dict[str, Any] = {"hardware_variants": HARDWARE_VARIANTS, "problems": {}}
    for case in CASES:
        baseline = Trace.load(traces / f"{case.problem}_baseline.json")
        pipeline = Trace.load(traces / f"{case.problem}_pipeline.json")
        rows: dict[str, Any] = {}
        for hw_name, hw_changes in HARDWARE_VARIANTS.items():
            report = Pinta(hardware_variant(hw_changes)).run(pipeline)
            for base_name, base_changes in BASELINE_VARIANTS.items():
                if hw_name != DEFAULT_VARIANT and base_name != DATASHEET:
                    continue  # one assumption changed at a time
                for plat_name, plat in platforms.items():
                    est = roofline(
                        plat_name, platform_variant(plat, base_changes), baseline, flops_per_element
                    )
                    rows[f"{hw_name} | {base_name} | {plat_name}"] = {
                        "pinta_s": report.seconds,
                        "pinta_j": report.energy_j,
                        "baseline_s": est.seconds,
                        "baseline_j": est.energy_j,
                        "speedup": est.seconds / report.seconds,
                        "energy_saving": est.energy_j / report.energy_j,
                    }
        results["problems"][case.problem] = rows
    return results
