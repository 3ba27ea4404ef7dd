"""One interleaved timer for every measurement: all variants take turns, round by round, so that
a change of machine load during the measurement hits them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch

from tqpinn.devices import synchronize


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> dict[str, list[float]]:
    """Seconds of each call of each variant: ``warmup`` untimed rounds, then ``rounds`` timed
    rounds, each round calling every variant once in the mapping's order.

    On CUDA the device is synchronised before and after each call, so a sample holds the
    variant's queued work and nothing of the previous one's.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got rounds={rounds}, warmup={warmup}")
    dev = torch.device(device)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(warmup + rounds):
        for name, fn in variants.items():
            synchronize(dev)
            start = time.perf_counter()
            fn()
            synchronize(dev)
            if r >= warmup:
                samples[name].append(time.perf_counter() - start)
    return samples


def medians(samples: Mapping[str, list[float]]) -> dict[str, float]:
    """The median of each variant's samples (seconds)."""
    return {name: statistics.median(s) for name, s in samples.items()}
