"""The dimension sweep at a tiny size: memory measured in capped child processes, time
interleaved in this one; a point above the cap fails alone with the pre-flight's message."""

import statistics

import pytest

from tqpinn.studies.dimension_sweep import (
    cheapest,
    dimension_sweep,
    plot_sweep,
    run_child,
    sweep_config,
)


def test_each_point_measured_and_the_cheapest_named(tmp_path):
    result = dimension_sweep(dims=(4,), estimators=("stein_K64", "taylor"), rounds=2, widths=[8, 8])
    section = result["dims"]["4"]
    points = section["points"]
    for name, p in points.items():
        assert "error" not in p, p
        assert p["peak_rss_bytes"] >= p["rss_before_steps"] > 0
        assert len(p["child_seconds"]) == 2 and len(p["times_s"]) == 2, name
        assert p["step_s"] == statistics.median(p["times_s"])
    fastest = min(points, key=lambda k: points[k]["step_s"])
    assert section["cheapest_time"] == fastest
    assert section["cheapest_memory"] == min(points, key=lambda k: points[k]["step_bytes"])
    plot_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_point_above_the_cap_fails_alone():
    # the stencil's shifted inputs alone: 2·C·N·D·4 B = 2·20001·50·20001·4 B ≈ 149 GiB
    point = run_child(sweep_config(20000, "stencil", [8, 8]), memory_cap=3 * 2**30)
    assert "needs at least 149 GiB" in point["error"]


def test_cheapest_ignores_points_without_the_metric():
    points = {"a": {"error": "x"}, "b": {"step_s": 2.0}, "c": {"step_s": 1.0}}
    assert cheapest(points, "step_s") == "c"
    assert cheapest({"a": {"error": "x"}}, "step_s") is None


def test_unknown_estimator_names_the_choices():
    with pytest.raises(ValueError, match="unknown estimator 'jet'; choose from"):
        sweep_config(10, "jet")
