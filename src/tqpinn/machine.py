"""What a measurement ran on: CPU model and the flags that decide kernel speed, torch threads and
version, the device, and the load average (a timing is only as good as the machine was idle)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")

SPEED_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
)
"""CPU features that change which kernels run (x86 vector and matrix units; ARM SIMD)."""

MODEL_KEYS = ("model name", "hardware", "processor")
"""cpuinfo keys naming the CPU, in order of preference (x86: "model name"; ARM kernels give
"Hardware" or, on some, a textual "Processor"; a numeric "processor" is an index, skipped)."""

FLAG_KEYS = ("flags", "features")
"""cpuinfo keys listing features: "flags" on x86, "Features" on ARM."""


@dataclass(frozen=True)
class CpuInfo:
    """model: the CPU's name; flags: the :data:`SPEED_FLAGS` it has, in that order."""

    model: str
    flags: tuple[str, ...]


def parse_cpuinfo(text: str, fallback_model: str = "") -> CpuInfo:
    """The CPU model and speed flags of a /proc/cpuinfo text (the first CPU's model; flags of
    any CPU). ``fallback_model`` when no line names the model."""
    models: dict[str, str] = {}
    for key, value in _fields(text):
        if key in MODEL_KEYS and not value.isdigit():
            models.setdefault(key, value)
    model = next((models[k] for k in MODEL_KEYS if models.get(k)), fallback_model)
    present = all_flags(text)
    return CpuInfo(model, tuple(f for f in SPEED_FLAGS if f in present))


def all_flags(text: str) -> frozenset[str]:
    """Every feature flag a /proc/cpuinfo text lists (any CPU)."""
    return frozenset(f for key, value in _fields(text) if key in FLAG_KEYS for f in value.split())


def _fields(text: str) -> list[tuple[str, str]]:
    """The (lower-case key, value) pairs of a cpuinfo text."""
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip().lower(), value.strip()))
    return pairs


def cpu_info(path: Path = CPUINFO) -> CpuInfo:
    """This machine's CPU; without a readable ``path`` (not Linux), the model from the
    ``platform`` module and no flags."""
    fallback = platform.processor() or platform.machine()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(fallback, ())
    return parse_cpuinfo(text, fallback)


def cpu_flags(path: Path = CPUINFO) -> frozenset[str]:
    """Every feature flag of this CPU; empty where ``path`` cannot be read (not Linux)."""
    try:
        return all_flags(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (runnable processes), empty where the OS has none."""
    try:
        return list(os.getloadavg())
    except OSError:
        return []


def device_name(device: str | torch.device = "cpu") -> str:
    """ "cpu", or the GPU's name for a CUDA device."""
    dev = torch.device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """JSON-ready description of where a measurement runs, with the load average now."""
    cpu = cpu_info()
    return {
        "cpu": cpu.model,
        "cpu_flags": list(cpu.flags),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device_name(device),
        "platform": platform.platform(),
        "loadavg": load_average(),
    }
