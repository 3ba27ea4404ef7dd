"""The SCALE-Sim cross-check on a small traced step: with a simulator that agrees with our
no-overlap model the differences vanish; the live comparison where scalesim is installed."""

import importlib.util
from pathlib import Path

import pytest

from tqpinn.hw.hardware import load_hardware
from tqpinn.hw.systolic import DATAFLOWS, compute_cycles, map_gemm
from tqpinn.studies.scalesim_crosscheck import crosscheck

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _ours_no_overlap(shapes, dataflow, work):
    hw = load_hardware()
    return [
        compute_cycles(map_gemm(dataflow, m, n, k), hw.array.rows, hw.array.cols, overlap=False)
        for m, n, k in shapes
    ]


def test_crosscheck_against_our_own_model_has_no_difference():
    result = crosscheck(CONFIGS, pairs=2, points=2, simulate=_ours_no_overlap)
    rows = result["rows"]
    assert result["trace"]["distinct_shapes"] == len(rows) > 0
    assert sum(r["count_in_step"] for r in rows) == result["trace"]["gemms"]
    assert rows == sorted(rows, key=lambda r: (r["m"], r["n"], r["k_exported"], r["mode"]))
    for r in rows:
        overlap = [r[d]["ours_overlap"] for d in DATAFLOWS]
        # PINTA's default is the fastest dataflow with double buffering
        assert r["pinta_default"]["cycles"] == min(overlap)
        for d in DATAFLOWS:
            assert r[d]["no_overlap_rel_diff"] == 0.0
            # double buffering hides stationary loads: never slower
            assert r[d]["ours_overlap"] <= r[d]["ours_no_overlap"]
            assert r[d]["overlap_rel_diff"] <= 0.0
    totals = result["totals_weighted_by_count"]
    for d in DATAFLOWS:
        assert totals[d]["scalesim"] == totals[d]["ours_no_overlap"]
        assert result["max_abs_rel_diff"][d]["no_overlap"] == 0.0
    assert totals["pinta_default"] <= min(totals[d]["ours_overlap"] for d in DATAFLOWS)


@pytest.mark.skipif(
    importlib.util.find_spec("scalesim") is None,
    reason="the optional scalesim package is not installed (pip install 'tqpinn[hw]')",
)
def test_crosscheck_with_scalesim_gives_positive_cycles_for_every_shape():
    result = crosscheck(CONFIGS, pairs=2, points=2)
    for r in result["rows"]:
        for d in DATAFLOWS:
            assert r[d]["scalesim"] > 0
