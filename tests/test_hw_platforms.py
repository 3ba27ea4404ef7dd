"""Baseline rooflines: a trace costed by hand, the datasheet table sourced, this machine measured."""

from importlib import resources

import pytest
import yaml

from tqpinn.hw.hardware import unsourced
from tqpinn.hw.platforms import (
    PLATFORMS_FILE,
    Platform,
    load_platforms,
    measure_this_machine,
    roofline,
)
from tqpinn.hw.trace import ElementwiseRecord, GemmRecord, Trace


def test_roofline_by_hand():
    p = Platform(
        label="toy",
        peak_flops=1e12,
        memory_bytes_per_s=1e11,
        power_w=100,
        compute_efficiency=0.5,
        memory_efficiency=0.8,
        kernel_overhead_s=2e-6,
    )
    # A 1024^3 FP32 GEMM: 2.147e9 FLOP at 0.5e12 FLOP/s = 4.29 ms; its 12 MiB at 0.8e11 B/s
    # = 0.157 ms: compute bound. A 1M-element add reads 8 MB and writes 4 MB: 12e6 / 0.8e11 =
    # 0.15 ms against 1e6 FLOP / 0.5e12 = 2 µs: memory bound.
    gemm = GemmRecord("forward", 1024, 1024, 1024, "fp32", "fp32", 32, 32, None)
    add = ElementwiseRecord("add", "simple", "layer", "forward", 10**6, 8 * 10**6, 4 * 10**6)
    flops = {"simple": 1.0}
    est = roofline("toy", p, Trace(gemms=[gemm], elementwise=[add]), flops)
    assert est.gemm_s == pytest.approx(2 * 1024**3 / 0.5e12)
    assert est.elementwise_s == pytest.approx(12e6 / 0.8e11)
    assert est.overhead_s == pytest.approx(2 * 2e-6)
    assert est.energy_j == pytest.approx(100 * est.seconds)
    assert est.kernels == 2


def test_platform_table_loads_with_a_source_for_every_number():
    data = yaml.safe_load(resources.files("tqpinn.hw").joinpath(PLATFORMS_FILE).read_text())
    flat = {**data["platforms"], "flops_per_element": data["flops_per_element"]}
    assert unsourced({**flat, "sources": data["sources"]}) == []
    platforms, flops_per_element = load_platforms()
    assert {"jetson_orin", "a100", "h100", "epyc_7763"} <= set(platforms)
    # Datasheet consistency: Jetson AGX Orin 2048 CUDA cores x 2 FLOP x 1.3 GHz.
    assert platforms["jetson_orin"].peak_flops == pytest.approx(2048 * 2 * 1.3e9, rel=1e-3)
    assert flops_per_element["memory"] == 0


def test_this_machine_is_measured():
    p = measure_this_machine(repeats=1)
    # Any CPU that runs the test suite does more than 0.1 GFLOP/s and 0.1 GB/s, and dispatches
    # an operator in less than a millisecond; a broken measurement (zero, inf) would not.
    assert 1e8 < p.peak_flops < 1e15
    assert 1e8 < p.memory_bytes_per_s < 1e13
    assert 0 < p.kernel_overhead_s < 1e-3
    assert p.power_w is None
