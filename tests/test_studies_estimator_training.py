"""The estimator-training benchmark at a tiny size: every row trained, interleaved, on the Heat
recipe (d = 100) with 8-unit layers; rows per point as the estimators' formulas give them."""

import copy
import math

import pytest

from tqpinn.errors import UserError
from tqpinn.studies.estimator_training import (
    BASELINE,
    ROW_KEYS,
    bench_estimator_training,
    merge_results,
    select_rows,
)

TINY = {"model.widths": [8, 8], "train.points.interior": 3, "train.eval_points": 64}


@pytest.fixture(scope="module")
def heat_result():
    return bench_estimator_training({"heat100d": 4}, short_steps=3, changes=TINY)


def test_rows_per_point_follow_each_estimators_formula(heat_result):
    rows = heat_result["recipes"]["heat100d"]["rows"]
    assert list(rows) == list(ROW_KEYS)
    columns = 100 + 1  # Δu needs the 100 spatial columns, u_t the time column
    expected = {
        "autodiff": 1,
        "stencil": 2 * columns + 1,
        "taylor": 1 + columns + 1,
    }
    for key, row in rows.items():
        name = row["estimator"]["name"]
        want = 2 * row["estimator"]["pairs"] + 1 if name == "stein" else expected[name]
        assert row["rows_per_point"] == want, key
    assert rows["fp32_stein_Krecipe"]["estimator"]["pairs"] == 1024  # heat100d_fp32_se.yaml
    assert rows["fp32_stein_K64"]["estimator"]["pairs"] == 64


def test_recipe_k_rows_are_cut_to_the_short_steps(heat_result):
    for key, row in heat_result["recipes"]["heat100d"]["rows"].items():
        steps = 3 if key.endswith("Krecipe") else 4
        assert row["steps"] == steps, key
        # step 0 measures saved bytes, step 1 warms up: the rest are timed
        assert row["timed_steps"] == steps - 2, key
        assert row["step_median_s"] > 0 and math.isfinite(row["rel_l2"])
        assert row[f"ratio_vs_{BASELINE}"] == pytest.approx(
            row["step_median_s"]
            / heat_result["recipes"]["heat100d"]["rows"][BASELINE]["step_median_s"]
        )


def test_smx_rows_save_less_than_fp32_rows(heat_result):
    # smx_paper keeps the GEMM operands packed (8.5 bits an INT8 element) instead of 32 bits
    rows = heat_result["recipes"]["heat100d"]["rows"]
    for name in ("autodiff", "stein_K64", "stencil", "taylor"):
        assert rows[f"smx_{name}"]["saved_bytes"] < rows[f"fp32_{name}"]["saved_bytes"], name


def test_merge_replaces_the_rerun_rows_only(heat_result):
    rows = copy.deepcopy(heat_result["recipes"]["heat100d"]["rows"])
    old = {"recipes": {"heat100d": {"steps": 4, "rows": rows}}}
    rerun = {**old["recipes"]["heat100d"]["rows"]["smx_taylor"], "step_median_s": 123.0}
    new = {
        "command": "again",
        "short_steps": 3,
        "loadavg_start": [0.0, 0.0, 0.0],
        "threads": 1,
        "recipes": {"heat100d": {"steps": 4, "rows": {"smx_taylor": rerun}}},
    }
    merged_result = merge_results(old, new)
    merged = merged_result["recipes"]["heat100d"]["rows"]
    assert list(merged) == list(ROW_KEYS)
    assert merged["smx_taylor"]["run"]["command"] == "again"
    assert "run" not in merged["fp32_taylor"]
    base = merged[BASELINE]["step_median_s"]
    assert merged["smx_taylor"][f"ratio_vs_{BASELINE}"] == pytest.approx(123.0 / base)
    assert merged_result["recipes"]["heat100d"]["steps"] == 4  # a partial re-run keeps it


def test_merge_of_a_whole_recipe_takes_its_step_count(heat_result):
    rows = heat_result["recipes"]["heat100d"]["rows"]
    old = {"recipes": {"heat100d": {"steps": 4, "rows": copy.deepcopy(rows)}}}
    new = {"command": "longer", "recipes": {"heat100d": {"steps": 9, "rows": copy.deepcopy(rows)}}}
    assert merge_results(old, new)["recipes"]["heat100d"]["steps"] == 9


def test_unknown_row_names_the_choices():
    with pytest.raises(UserError, match=r"unknown row 'smx_magic'; choose from .*smx_taylor"):
        select_rows(["smx_magic"])
    assert [r.key for r in select_rows(["smx_taylor", "fp32_autodiff"])] == [
        "fp32_autodiff",
        "smx_taylor",
    ]
