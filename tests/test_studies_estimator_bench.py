"""The estimator bench at a tiny size: every configuration timed, ratios made of its times."""

import statistics

import pytest

from tqpinn.studies.estimator_bench import (
    FUNC_LABEL,
    LAPLACIAN_BASELINE,
    TRAINING_BASELINE,
    bench_estimators,
    summarize,
)

TINY = {"poisson2d": ("poisson", {"dim": 2}, 2)}  # 2 interior points per step


def _check_summary(results: dict, baseline: str) -> None:
    key = f"ratio_vs_{baseline}"
    base_times = results[baseline]["times_s"]
    for r in results.values():
        assert all(t > 0 for t in r["times_s"])
        assert r["median_s"] == statistics.median(r["times_s"])
        assert r["min_s"] == min(r["times_s"])
        ratios = [t / b for t, b in zip(r["times_s"], base_times, strict=True)]
        assert r[key] == statistics.median(ratios)
    assert results[baseline][key] == 1.0


def test_bench_estimators_times_every_configuration_and_ratios_follow_the_times():
    result = bench_estimators(
        pairs=(4,), diffquant_modes=("off", "full"), rounds=3, problems=TINY, widths=(8,)
    )
    assert list(result) == [
        "rounds",
        "loadavg_start",
        "training_step",
        "autodiff_laplacian",
        "loadavg_end",
    ]
    section = result["training_step"]["poisson2d"]
    assert set(section["results"]) == {
        TRAINING_BASELINE,
        "stein_diffquant_off_K4",
        "stein_diffquant_full_K4",
    }
    assert all(len(r["times_s"]) == 3 for r in section["results"].values())
    assert section["setting"]["interior_points"] == 2
    _check_summary(section["results"], TRAINING_BASELINE)

    laplacian = result["autodiff_laplacian"]["poisson2d"]
    timed = set(laplacian["results"])
    # d = 2: one direction per pass, or both in one; the torch.func reference when it runs
    assert {"directions_per_pass=1", "directions_per_pass=2"} <= timed
    assert (FUNC_LABEL in timed) == (laplacian["torch_func_error"] is None)
    _check_summary(laplacian["results"], LAPLACIAN_BASELINE)


def test_bench_estimators_without_the_sweep_has_no_laplacian_section():
    result = bench_estimators(
        pairs=(4,),
        diffquant_modes=("off",),
        rounds=1,
        autodiff_sweep=False,
        problems=TINY,
        widths=(8,),
    )
    assert "autodiff_laplacian" not in result


def test_summarize_takes_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    times = {"base": [1.0, 2.0, 4.0], "other": [3.0, 2.0, 4.0]}
    out = summarize(times, "base")
    # per-round ratios 3, 1, 1: median 1; the ratio of medians would be 3/2
    assert out["other"]["ratio_vs_base"] == 1.0
    assert out["other"]["median_s"] == 3.0


def test_summarize_needs_the_same_rounds_for_every_configuration():
    with pytest.raises(ValueError):
        summarize({"base": [1.0, 2.0], "other": [1.0]}, "base")
