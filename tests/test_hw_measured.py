"""Measured baselines: timing files validated and sourced, energy from measured power or TDP."""

import pytest
import yaml

from tqpinn.errors import UserError
from tqpinn.hw.measured import (
    MeasuredPlatform,
    load_measured,
    load_timing_file,
    measured_estimate,
)
from tqpinn.hw.platforms import load_platforms

STEP = {"poisson2d": {"fp32_ad_dense": 0.01}}


def write(tmp_path, data):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_packaged_h100_timings_are_the_measured_ones():
    h100 = load_measured()["h100_measured"]
    # benchmarks/results/bench_cuda_h100.json, step_time: 6.44 ms (Poisson), 26.5 ms (Heat).
    assert h100.step_seconds("poisson2d", "fp32_ad_dense") == pytest.approx(6.4386e-3, rel=1e-4)
    assert h100.step_seconds("heat100d", "fp32_ad_dense") == pytest.approx(2.6538e-2, rel=1e-4)
    assert h100.step_seconds("hjb20d", "fp32_ad_dense") is None
    assert h100.roofline == "h100" and h100.power_w is None


def test_energy_from_measured_power_else_the_roofline_twins_tdp():
    rooflines, _ = load_platforms()
    measured = MeasuredPlatform(name="m", label="m", roofline="a100", power_w=120.0, steps=STEP)
    est = measured_estimate(measured, "poisson2d", "fp32_ad_dense", rooflines)
    assert est.energy_j == pytest.approx(1.2) and est.power_basis == "measured"
    tdp = measured.model_copy(update={"power_w": None})
    est = measured_estimate(tdp, "poisson2d", "fp32_ad_dense", rooflines)
    assert est.energy_j == pytest.approx(rooflines["a100"].power_w * 0.01)
    assert est.power_basis == "TDP of a100"
    alone = tdp.model_copy(update={"roofline": None})
    est = measured_estimate(alone, "poisson2d", "fp32_ad_dense", rooflines)
    assert est.energy_j is None and est.power_basis == "unknown"
    assert measured_estimate(measured, "hjb20d", "fp32_ad_dense", rooflines) is None


def test_timing_file_round_trip(tmp_path):
    platform = MeasuredPlatform(name="m", label="m", steps=STEP, sources={"steps": "timed by hand"})
    path = tmp_path / "m.yaml"
    path.write_text(platform.to_yaml())
    assert load_timing_file(path) == platform


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "m", "label": "m", "steps": STEP, "sources": {}}, "without a source"),
        ({"name": "m", "label": "m", "steps": STEP, "watts": 3}, "'watts'"),
        ({"name": "m", "label": "m", "steps": {"poisson2d": {"x": -1}}}, "steps.poisson2d.x"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_timing_files_name_the_key(tmp_path, data, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        load_timing_file(write(tmp_path, data))
