"""PINTA sensitivity on the committed traces: one assumption changed at a time, speedups and
savings made of the costs beside them, each variant moving only its own side."""

from pathlib import Path

import pytest

from tqpinn.hw.hardware import load_hardware
from tqpinn.hw.pinta import Pinta
from tqpinn.hw.platforms import load_platforms, roofline
from tqpinn.hw.trace import Trace
from tqpinn.studies.hw_compare import CASES
from tqpinn.studies.pinta_sensitivity import (
    BASELINE_VARIANTS,
    DATASHEET,
    DEFAULT_VARIANT,
    HARDWARE_VARIANTS,
    hardware_variant,
    sensitivity,
)

TRACES = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "hw_compare"
OVERHEAD, HALF_POWER = "kernel overhead 20 us", "board power 50% of TDP"


@pytest.fixture(scope="module")
def result():
    return sensitivity(TRACES)


def test_every_problem_has_one_row_per_single_change_and_platform(result):
    platforms, _ = load_platforms()
    assert set(result["problems"]) == {c.problem for c in CASES}
    variants = len(HARDWARE_VARIANTS) + len(BASELINE_VARIANTS) - 1
    for rows in result["problems"].values():
        assert len(rows) == variants * len(platforms)
        for r in rows.values():
            assert r["speedup"] == r["baseline_s"] / r["pinta_s"]
            assert r["energy_saving"] == r["baseline_j"] / r["pinta_j"]
            assert min(r["pinta_s"], r["pinta_j"], r["baseline_s"], r["baseline_j"]) > 0


def test_the_default_row_is_pinta_and_the_roofline_unchanged(result):
    platforms, flops_per_element = load_platforms()
    case = CASES[0]
    pipeline = Trace.load(TRACES / f"{case.problem}_pipeline.json")
    baseline = Trace.load(TRACES / f"{case.problem}_baseline.json")
    report = Pinta(load_hardware()).run(pipeline)
    for name, plat in platforms.items():
        r = result["problems"][case.problem][f"{DEFAULT_VARIANT} | {DATASHEET} | {name}"]
        est = roofline(name, plat, baseline, flops_per_element)
        assert (r["pinta_s"], r["pinta_j"]) == (report.seconds, report.energy_j)
        assert (r["baseline_s"], r["baseline_j"]) == (est.seconds, est.energy_j)


def test_each_variant_moves_only_its_own_side(result):
    platforms, _ = load_platforms()
    for problem, rows in result["problems"].items():
        trace = Trace.load(TRACES / f"{problem}_baseline.json")
        kernels = len(trace.gemms) + len(trace.elementwise)
        for plat_name, plat in platforms.items():
            ref = rows[f"{DEFAULT_VARIANT} | {DATASHEET} | {plat_name}"]
            for hw_name in HARDWARE_VARIANTS:
                r = rows[f"{hw_name} | {DATASHEET} | {plat_name}"]
                assert (r["baseline_s"], r["baseline_j"]) == (ref["baseline_s"], ref["baseline_j"])
            half = rows[f"{DEFAULT_VARIANT} | {HALF_POWER} | {plat_name}"]
            assert half["pinta_s"] == ref["pinta_s"] and half["baseline_s"] == ref["baseline_s"]
            assert half["baseline_j"] == pytest.approx(ref["baseline_j"] / 2, rel=1e-12)
            slow = rows[f"{DEFAULT_VARIANT} | {OVERHEAD} | {plat_name}"]
            moved = slow["baseline_s"] - ref["baseline_s"]
            expected = kernels * (
                BASELINE_VARIANTS[OVERHEAD]["kernel_overhead_s"] - plat.kernel_overhead_s
            )
            assert moved == pytest.approx(expected, rel=1e-9, abs=1e-12 * ref["baseline_s"])


def test_hardware_variant_changes_only_the_named_keys():
    default = load_hardware()
    wide = hardware_variant({"array.rows": 64, "array.cols": 64})
    assert (wide.array.rows, wide.array.cols) == (64, 64)
    assert wide.clock_hz == default.clock_hz
