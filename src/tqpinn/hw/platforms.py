"""Baseline platforms as rooflines, and this machine measured.

Every kernel of a trace (GEMM or element-wise) costs

    t = max(FLOPs / (peak · compute_efficiency), bytes / (bandwidth · memory_efficiency))
        + kernel_overhead

and the step costs the sum (kernels of an eager training step run one after another). Energy is
board power x time. Datasheet rows live in ``platforms.yaml`` with their sources.
:func:`measure_this_machine` fits the same three rates to this machine by micro-benchmarks, and
:func:`time_step` measures a real step's wall time, so that the roofline can be checked against
a measurement on at least one platform.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, PositiveFloat, ValidationError

from tqpinn.errors import UserError
from tqpinn.hw.hardware import unsourced
from tqpinn.hw.opclass import OP_CLASSES
from tqpinn.hw.trace import Trace
from tqpinn.timing import interleaved, medians

PLATFORMS_FILE = "platforms.yaml"


class Platform(BaseModel):
    """A roofline: peak FP32 rate, memory bandwidth, per-kernel overhead, board power."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    peak_flops: PositiveFloat
    memory_bytes_per_s: PositiveFloat
    power_w: PositiveFloat | None
    compute_efficiency: PositiveFloat = 1.0
    memory_efficiency: PositiveFloat = 1.0
    kernel_overhead_s: NonNegativeFloat = 0.0


@dataclass(frozen=True)
class PlatformEstimate:
    """Roofline cost of one step: seconds split into GEMM, element-wise and kernel overhead."""

    platform: str
    gemm_s: float
    elementwise_s: float
    overhead_s: float
    kernels: int
    power_w: float | None

    @property
    def seconds(self) -> float:
        return self.gemm_s + self.elementwise_s + self.overhead_s

    @property
    def energy_j(self) -> float | None:
        return None if self.power_w is None else self.power_w * self.seconds

    def summary(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "seconds": self.seconds,
            "energy_j": self.energy_j,
            "gemm_s": self.gemm_s,
            "elementwise_s": self.elementwise_s,
            "overhead_s": self.overhead_s,
            "kernels": self.kernels,
        }


def load_platforms() -> tuple[dict[str, Platform], dict[str, float]]:
    """The packaged platform table and FLOPs per element of each op class."""
    text = resources.files("tqpinn.hw").joinpath(PLATFORMS_FILE).read_text()
    data = yaml.safe_load(text)
    missing = unsourced(
        {
            **data["platforms"],
            "flops_per_element": data["flops_per_element"],
            "sources": data["sources"],
        }
    )
    if missing:
        raise UserError(f"{PLATFORMS_FILE}: parameters without a source: {missing}")
    try:
        table = {name: Platform.model_validate(row) for name, row in data["platforms"].items()}
    except ValidationError as err:
        raise UserError(f"{PLATFORMS_FILE}: {err.errors()[0]['msg']}") from None
    flops = {c: float(data["flops_per_element"][c]) for c in OP_CLASSES}
    return table, flops


def roofline(
    name: str, platform: Platform, trace: Trace, flops_per_element: dict[str, float]
) -> PlatformEstimate:
    """Cost of one step of ``trace`` on ``platform`` (every kernel in the trace, in order)."""
    compute_rate = platform.peak_flops * platform.compute_efficiency
    memory_rate = platform.memory_bytes_per_s * platform.memory_efficiency
    gemm_s = sum(max(g.flops / compute_rate, g.bytes_moved / memory_rate) for g in trace.gemms)
    elementwise_s = sum(
        max(r.elements * flops_per_element[r.op_class] / compute_rate, r.bytes_moved / memory_rate)
        for r in trace.elementwise
    )
    kernels = len(trace.gemms) + len(trace.elementwise)
    return PlatformEstimate(
        name, gemm_s, elementwise_s, kernels * platform.kernel_overhead_s, kernels, platform.power_w
    )


def _best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up (allocations, thread pool)."""
    return min(interleaved({"fn": fn}, repeats)["fn"])


def measure_this_machine(repeats: int = 5) -> Platform:
    """This machine's achieved FP32 GEMM rate, copy bandwidth and per-operator overhead.

    GEMM: a 1024^3 FP32 matmul (2·1024³ FLOPs). Bandwidth: copying 32 MiB (read + write = 64 MiB
    moved). Overhead: the time of an add on 1-element tensors, which does no work. Efficiencies
    are 1: these are achieved rates already. No power model: energy is not reported.
    """
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    gemm_s = _best_seconds(lambda: a @ b, repeats)
    src = torch.empty(8 * 2**20)
    dst = torch.empty_like(src)
    copy_s = _best_seconds(lambda: dst.copy_(src), repeats)
    x, y = torch.ones(1), torch.ones(1)
    n_small = 2000

    def small_ops() -> None:
        for _ in range(n_small):
            torch.add(x, y)

    overhead_s = _best_seconds(small_ops, repeats) / n_small
    return Platform(
        label=f"this machine ({torch.get_num_threads()} threads), measured",
        peak_flops=2 * 1024**3 / gemm_s,
        memory_bytes_per_s=2 * src.numel() * 4 / copy_s,
        power_w=None,
        kernel_overhead_s=overhead_s,
    )


def time_step(step: Callable[[], Any], repeats: int = 3) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls, after one warm-up call."""
    return medians(interleaved({"step": step}, repeats))["step"]
