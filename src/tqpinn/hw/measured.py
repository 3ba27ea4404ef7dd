"""Measured baselines: a platform whose step time per problem config was timed, not modelled.

A timing file (YAML or JSON) names one platform and gives seconds per training step for
(problem, reproduce variant) pairs, with a source for each number:

    name: h100_measured
    label: "H100 SXM5 80GB, measured"
    roofline: h100          # the datasheet roofline of the same device (its error is reported)
    power_w: null           # measured average board power, where known
    steps:
      poisson2d: {fp32_ad_dense: 6.44e-3}
    sources: {steps.poisson2d: "...", ...}

Energy is measured power x measured time when the file gives a power; otherwise the board power
of its roofline twin (a TDP: an upper bound of the draw) x measured time; otherwise unknown.
The packaged ``measured_h100.yaml`` holds the H100 step times the project measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError

from tqpinn.errors import UserError
from tqpinn.hw.hardware import unsourced
from tqpinn.hw.platforms import Platform
from tqpinn.hw.yaml_file import read_yaml_file

PACKAGED_TIMINGS = ("measured_h100.yaml",)
"""Timing files shipped with the package, loaded by every ``tqpinn hw --compare``."""


class MeasuredPlatform(BaseModel):
    """Seconds per training step, per problem and reproduce variant, on one real platform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str
    roofline: str | None = None
    power_w: PositiveFloat | None = None
    steps: dict[str, dict[str, PositiveFloat]]
    sources: dict[str, str] = {}

    def step_seconds(self, problem: str, variant: str) -> float | None:
        return self.steps.get(problem, {}).get(variant)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False)


@dataclass(frozen=True)
class MeasuredEstimate:
    """One measured step: seconds, and energy with the power it was computed from."""

    platform: str
    seconds: float
    power_w: float | None
    power_basis: str
    """"measured", "TDP of <roofline>" or "unknown"."""

    @property
    def energy_j(self) -> float | None:
        return None if self.power_w is None else self.power_w * self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "seconds": self.seconds,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "power_basis": self.power_basis,
        }


def measured_from_dict(data: Any, origin: str) -> MeasuredPlatform:
    """Validate a timing file's content; UserError naming the bad key."""
    if not isinstance(data, dict):
        raise UserError(f"{origin}: a timing file must be a mapping")
    try:
        platform = MeasuredPlatform.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        valid = list(MeasuredPlatform.model_fields)
        raise UserError(f"{origin}: timing key {key!r}: {first['msg']} (keys: {valid})") from None
    missing = unsourced(data)
    if missing:
        raise UserError(f"{origin}: measurements without a source in 'sources': {missing}")
    return platform


def load_timing_file(path: Path) -> MeasuredPlatform:
    """A measured platform from a YAML (or JSON) timing file."""
    data = read_yaml_file(path, "timing file")
    return measured_from_dict(data, str(path))


def load_measured(extra: list[Path] | None = None) -> dict[str, MeasuredPlatform]:
    """The packaged measured platforms, then those of ``extra`` timing files (by name)."""
    found = [
        measured_from_dict(yaml.safe_load(resources.files("tqpinn.hw").joinpath(f).read_text()), f)
        for f in PACKAGED_TIMINGS
    ]
    found += [load_timing_file(p) for p in extra or []]
    return {p.name: p for p in found}


def measured_estimate(
    platform: MeasuredPlatform, problem: str, variant: str, rooflines: dict[str, Platform]
) -> MeasuredEstimate | None:
    """The measured step of (problem, variant) on ``platform``, or None if not measured there."""
    seconds = platform.step_seconds(problem, variant)
    if seconds is None:
        return None
    if platform.power_w is not None:
        power, basis = platform.power_w, "measured"
    elif platform.roofline in rooflines and rooflines[platform.roofline].power_w is not None:
        power, basis = rooflines[platform.roofline].power_w, f"TDP of {platform.roofline}"
    else:
        power, basis = None, "unknown"
    return MeasuredEstimate(platform.name, seconds, power, basis)
