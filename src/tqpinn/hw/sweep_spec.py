"""A design-space sweep, as data: which saved traces, which baselines, which parameter values.

A spec (YAML) names the problems, the baseline platforms, a ``grid`` (parameter -> list of
values; every combination is a design point) and/or ``points`` (explicit design points, each a
mapping parameter -> value). A parameter is

- a hardware key: any dotted leaf of the hardware description (``array.rows``, ``clock_hz``,
  ``sram.buffer_bytes``, ``modes.int8xint8.macs_per_pe_cycle``, ``schedule.tile_points``...);
- ``array.bricks_per_pe``: 4x4-bit multiplier bricks per PE; it sets every mode's MACs per PE
  per cycle (an a x b-bit integer product takes ceil(a/4)·ceil(b/4) bricks; the floating-point
  fallback's 24x24-bit mantissa product 36, in passes when a PE has fewer) and scales the static
  power with the array's bricks, as its source derives it;
- a workload key, applied by choosing or re-tracing the step: ``estimator`` (stein, taylor,
  stencil: the full pipeline with that estimator) and ``stein_pairs`` (K, re-traced; null for
  the recipe's own K).

Parameters left out keep the base description's value (the packaged default unless ``hardware``
names a file). Unknown keys and bad values raise UserError naming the key and the choices.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError

from tqpinn.errors import UserError
from tqpinn.hw.area import DEFAULT_BRICKS_PER_PE
from tqpinn.hw.hardware import Hardware, hardware_from_dict
from tqpinn.hw.yaml_file import read_yaml_file

BRICKS = "array.bricks_per_pe"
ESTIMATOR, STEIN_PAIRS = "estimator", "stein_pairs"
WORKLOAD_KEYS = (ESTIMATOR, STEIN_PAIRS)
ESTIMATORS = ("stein", "taylor", "stencil")
BRICK_BITS = 4
FLOAT_MANTISSA_BRICKS = 36
"""A 24x24-bit FP32 mantissa product in 4x4-bit bricks: 6 x 6."""


class SweepSpec(BaseModel):
    """The sweep file's content; paths are relative to the working directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traces: Path
    """Saved traces of ``tqpinn hw --compare`` (``<problem>_baseline.json`` and pipelines)."""
    configs: Path = Path("configs")
    """Recipe configs, read when ``stein_pairs`` asks for a re-trace."""
    problems: list[str]
    baselines: list[str]
    hardware: Path | None = None
    timings: list[Path] = []
    grid: dict[str, list[Any]] = {}
    points: list[dict[str, Any]] = []
    targets: dict[str, PositiveFloat] = {"speedup": 5.5, "energy_saving": 159.6}


def hardware_keys(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the numeric, boolean and null leaves of a hardware description."""
    keys = []
    for key, value in data.items():
        if prefix == "" and key in ("name", "sources"):
            continue
        if isinstance(value, dict):
            keys += hardware_keys(value, f"{prefix}{key}.")
        elif not isinstance(value, str):
            keys.append(f"{prefix}{key}")
    return keys


def load_spec(path: Path) -> SweepSpec:
    """The sweep spec in ``path``; UserError naming a bad key."""
    data = read_yaml_file(path, "sweep spec")
    if not isinstance(data, dict):
        raise UserError(f"{path}: a sweep spec must be a mapping")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise UserError(
                f"{path}: unknown sweep key {key!r}; choose from {list(SweepSpec.model_fields)}"
            ) from None
        raise UserError(f"{path}: sweep key {key!r}: {first['msg']}") from None


def check_parameters(spec: SweepSpec, base: dict[str, Any], origin: str) -> None:
    """Every grid and point parameter is a known key; estimators are known names."""
    valid = [*WORKLOAD_KEYS, BRICKS, *hardware_keys(base)]
    given = list(spec.grid) + [k for p in spec.points for k in p]
    for key in given:
        if key not in valid:
            raise UserError(f"{origin}: unknown sweep parameter {key!r}; choose from {valid}")
    estimators = spec.grid.get(ESTIMATOR, []) + [
        p[ESTIMATOR] for p in spec.points if ESTIMATOR in p
    ]
    for name in estimators:
        if name not in ESTIMATORS:
            raise UserError(f"{origin}: unknown estimator {name!r}; choose from {list(ESTIMATORS)}")
    for key, values in spec.grid.items():
        if not values:
            raise UserError(f"{origin}: grid parameter {key!r} has no values")


def design_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid, then the explicit points; duplicates dropped."""
    keys = list(spec.grid)
    combos = [dict(zip(keys, vs, strict=True)) for vs in itertools.product(*spec.grid.values())]
    seen, out = set(), []
    for point in combos + [dict(p) for p in spec.points]:
        if point.get(ESTIMATOR, "stein") != "stein":
            point.pop(STEIN_PAIRS, None)  # pairs mean nothing to the other estimators
        key = yaml.safe_dump(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out


def macs_per_pe_cycle(a_bits: int, b_bits: int, integer: bool, bricks: int) -> float:
    """MACs a PE of ``bricks`` 4x4-bit bricks does per cycle in an (a x b)-bit mode."""
    need = (
        FLOAT_MANTISSA_BRICKS
        if not integer
        else math.ceil(a_bits / BRICK_BITS) * math.ceil(b_bits / BRICK_BITS)
    )
    if bricks >= need:
        return float(bricks // need)
    return 1.0 / math.ceil(need / bricks)


def hardware_at(base: dict[str, Any], point: dict[str, Any], origin: str) -> Hardware:
    """The base description with the point's hardware parameters applied."""
    data = copy.deepcopy(base)
    bricks = point.get(BRICKS, DEFAULT_BRICKS_PER_PE)
    if BRICKS in point:
        for mode in data["modes"].values():
            mode["macs_per_pe_cycle"] = macs_per_pe_cycle(
                mode["a_bits"], mode["b_bits"], mode["integer"], bricks
            )
    for key, value in point.items():
        if key in WORKLOAD_KEYS or key == BRICKS:
            continue
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    base_array = base["array"]["rows"] * base["array"]["cols"] * DEFAULT_BRICKS_PER_PE
    array = data["array"]["rows"] * data["array"]["cols"] * bricks
    if "static_power_w" not in point:
        # Leakage grows with the array it was derived from (pinta_default.yaml's source).
        data["static_power_w"] = base["static_power_w"] * array / base_array
    return hardware_from_dict(data, origin)
