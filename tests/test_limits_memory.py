"""The memory pre-flight compares a run with what this process may use: the smallest of the
physical RAM, its address-space limit (ulimit -v) and its cgroup's limit."""

import resource

import pytest
import torch

from tqpinn.train import limits

GIB = 2**30
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("ram", "rlimit", "cgroup", "expected"),
    [
        (64 * GIB, None, None, 64 * GIB),
        (64 * GIB, 8 * GIB, None, 8 * GIB),  # ulimit -v 8G
        (64 * GIB, None, 2 * GIB, 2 * GIB),  # a container limited to 2 GiB
        (64 * GIB, 8 * GIB, 2 * GIB, 2 * GIB),
        (4 * GIB, 8 * GIB, 16 * GIB, 4 * GIB),
    ],
)
def test_device_memory_is_the_smallest_limit(monkeypatch, ram, rlimit, cgroup, expected):
    monkeypatch.setattr(limits, "physical_ram", lambda: ram)
    monkeypatch.setattr(limits, "address_space_limit", lambda: rlimit)
    monkeypatch.setattr(limits, "cgroup_limit", lambda: cgroup)
    assert limits.device_memory(CPU) == expected


def test_rlimit_infinity_is_no_limit(monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert limits.address_space_limit() is None
    monkeypatch.setattr(resource, "getrlimit", lambda _: (3 * GIB, resource.RLIM_INFINITY))
    assert limits.address_space_limit() == 3 * GIB


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"v2": "2147483648\n"}, 2 * GIB),
        ({"v2": "max\n"}, None),  # v2 without a limit
        ({"v1": "1073741824\n"}, GIB),  # v1 only
        ({}, None),  # no cgroup files readable
    ],
)
def test_cgroup_limit_reads_v2_then_v1(tmp_path, monkeypatch, files, expected):
    paths = {"v2": tmp_path / "memory.max", "v1": tmp_path / "memory.limit_in_bytes"}
    for version, text in files.items():
        paths[version].write_text(text)
    monkeypatch.setattr(limits, "CGROUP_LIMITS", (paths["v2"], paths["v1"]))
    assert limits.cgroup_limit() == expected
