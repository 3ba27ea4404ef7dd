"""The memory bench at a tiny size: each point measured in its own process, the fit made of the
points, the bound's terms ordered as the stored formats imply."""

import pytest

from tqpinn.studies.memory_bench import (
    BASE,
    bench_memory,
    config_for,
    fit_sweep,
    linear_fit,
)

TINY_BASE = {
    **BASE,
    "model": {"widths": [16, 16, 16]},
    "train": {"steps": 2, "eval_points": 64, "points": {"interior": 8, "boundary": 8}},
}


def test_bench_memory_measures_each_point_in_its_own_process():
    lines = []
    result = bench_memory(
        sweeps={"pairs": ([4, 8], ["stein"])},
        quants=("fp32", "smx_paper"),
        base=TINY_BASE,
        log=lines.append,
    )
    assert len(lines) == 2
    points = result["sweeps"]["pairs/stein"]
    measured = [*points, *result["quant"].values()]
    for p in measured:
        assert "error" not in p, p
        assert p["step_bytes"] > 0 and p["saved_bytes"] > 0 and p["seconds_per_step"] > 0
        assert p["bound_bytes"] == sum(p["bound_terms"].values())
        terms = p["bound_terms"]
        assert p["bound_step_bytes"] == terms["activations"] + terms["perturbations"]
        assert 0 < p["bound_step_bytes"] < p["bound_bytes"]
    # more Stein pairs keep more perturbed rows
    assert points[0]["bound_step_bytes"] < points[1]["bound_step_bytes"]
    assert points[0]["saved_bytes"] < points[1]["saved_bytes"]

    fit = result["fits"]["pairs/stein"]
    assert fit["step_over_bound"] == [p["step_bytes"] / p["bound_step_bytes"] for p in points]
    assert fit == fit_sweep(points, result["ram_bytes"])

    fp32, smx = result["quant"]["fp32"], result["quant"]["smx_paper"]
    assert fp32["n_params"] == smx["n_params"]
    # activations and perturbations are kept in fwd.input's format: INT8 (1 byte) vs 4 bytes
    for part in ("activations", "perturbations"):
        assert fp32["bound_terms"][part] == 4 * smx["bound_terms"][part]
    assert smx["saved_bytes"] < fp32["saved_bytes"]


def test_a_failing_point_is_recorded_and_left_out_of_the_fit():
    bad = {**TINY_BASE, "problem": {"name": "no_such_problem", "options": {}}}
    result = bench_memory(sweeps={}, quants=("fp32",), base=bad)
    assert "no_such_problem" in result["quant"]["fp32"]["error"]


def test_linear_fit_recovers_a_line_and_the_ram_it_fills():
    a, b = linear_fit([1, 2, 4], [10 + 3 * x for x in [1, 2, 4]])
    assert (a, b) == pytest.approx((10, 3), abs=1e-12)
    points = [
        {"value": 1, "step_bytes": 13, "bound_step_bytes": 13},
        {"value": 2, "error": "out of memory"},
        {"value": 4, "step_bytes": 22, "bound_step_bytes": 11},
    ]
    fit = fit_sweep(points, ram=70)
    assert fit["fits_in_ram"] == pytest.approx((70 - 10) / 3)
    assert fit["step_over_bound"] == [1.0, 2.0]


def test_config_for_sets_one_knob_and_rejects_unknown_ones():
    cfg = config_for("stein", "width", 32, quant="smx_paper")
    assert cfg["model"]["widths"] == [32, 32, 32]
    assert cfg["quant"] == "smx_paper" and cfg["estimator"]["name"] == "stein"
    assert BASE["model"]["widths"] == [256, 256, 256]  # the base is not changed
    with pytest.raises(ValueError, match=r"unknown knob 'depth'; choose from \['dim'"):
        config_for("autodiff", "depth", 3)
