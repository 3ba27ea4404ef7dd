"""The interleaved timer: variants in turn, warm-up rounds untimed, CUDA synchronised."""

import time

import pytest
import torch

import tqpinn.timing
from tqpinn.timing import interleaved, medians


def test_variants_take_turns_and_warmup_is_not_sampled():
    calls: list[str] = []
    samples = interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=2
    )
    assert calls == ["a", "b"] * 5
    assert [len(s) for s in samples.values()] == [3, 3]


def test_samples_are_per_variant_seconds():
    sleep_s = 0.02
    samples = interleaved({"fast": lambda: None, "slow": lambda: time.sleep(sleep_s)}, rounds=2)
    # time.sleep sleeps at least its argument; a no-op takes far less than that.
    assert min(samples["slow"]) >= sleep_s
    assert max(samples["fast"]) < sleep_s
    assert medians(samples)["slow"] >= sleep_s


def test_cuda_is_synchronised_around_every_call(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(tqpinn.timing, "synchronize", lambda d: events.append(f"sync {d.type}"))
    interleaved({"a": lambda: events.append("a")}, rounds=1, warmup=1, device="cuda")
    assert events == ["sync cuda", "a", "sync cuda"] * 2


def test_bad_counts_name_the_values():
    with pytest.raises(ValueError, match="rounds=0"):
        interleaved({"a": lambda: None}, rounds=0)


def test_cpu_device_by_default_is_accepted_as_torch_device():
    assert len(interleaved({"a": lambda: None}, rounds=1, device=torch.device("cpu"))["a"]) == 1
