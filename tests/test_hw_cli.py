"""``tqpinn hw``: one config's step costed end to end, the per-problem comparison, user errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tqpinn.studies.hw_compare import CASES, PAPER_ENERGY_SAVING, PAPER_SPEEDUP, case_configs
from tqpinn.studies.reproduce import variant_configs
from tqpinn.train.config import load_config

REPO = Path(__file__).resolve().parents[1]

SHRINK = {
    # Recipe configs made tiny: same structure (problem, estimator, TT, conditions), few rows.
    "model": {"widths": [16, 16, 16]},
    "estimator_pairs": 4,
    "points": 6,
}


def tqpinn(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tqpinn", "hw", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def tiny_recipes(directory: Path) -> Path:
    """Copies of the recipe configs that --compare reads, shrunk so that a step takes ms."""
    directory.mkdir()
    names = {n for c in CASES for n in (c.baseline, c.pipeline)}
    for name in names:
        data = load_config(REPO / "configs" / name).to_dict()
        data["model"]["widths"] = SHRINK["model"]["widths"]
        if data["model"].get("tt"):
            data["model"]["tt"]["shapes"] = None
            data["model"]["tt"]["n_cores"] = 3  # PRS groups 2 + 1 (2 cores would be sequential)
        if data["estimator"]["name"] == "stein":
            data["estimator"]["pairs"] = SHRINK["estimator_pairs"]
        data["train"]["points"] = dict.fromkeys(data["train"]["points"], SHRINK["points"])
        (directory / name).write_text(yaml.safe_dump(data))
    return directory


@pytest.mark.parametrize("case", CASES, ids=[c.problem for c in CASES])
def test_compare_costs_the_networks_that_reproduce_trains(case):
    # The paper-budget ablation's first and last rows: FP32 autodiff and the full pipeline
    # (for Poisson and Heat: rank-4 Xavier TT hidden layers, PRS).
    baseline, pipeline = case_configs(case, REPO / "configs")
    trained = variant_configs("paper", case.problem)
    assert baseline == trained["fp32_ad_dense"]
    assert pipeline == trained["full_pipeline"]


def test_one_config_writes_json_trace_and_plot(tmp_path):
    cfg = tiny_recipes(tmp_path / "configs") / "poisson2d_fp32_ad.yaml"
    out = tmp_path / "hw"
    result = tqpinn(
        "--config", str(cfg), "--set", "quant=smx_paper", "--out", str(out), "--no-measure"
    )
    assert result.returncode == 0, result.stderr
    assert "PINTA (pinta-default)" in result.stdout and "jetson_orin" in result.stdout
    summary = json.loads((out / "hw.json").read_text())
    assert summary["pinta"]["step"]["energy_j"] > 0
    assert summary["pinta"]["step"]["macs_by_mode"].get("int8xint8", 0) > 0
    assert (out / "trace.json").is_file()
    assert (out / "energy_breakdown.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_prints_every_problem_beside_the_paper_ranges(tmp_path):
    configs = tiny_recipes(tmp_path / "configs")
    result = tqpinn("--compare", "--configs", str(configs), "--no-measure", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"speedup {PAPER_SPEEDUP[0]}x-{PAPER_SPEEDUP[1]}x" in result.stdout
    assert f"energy saving {PAPER_ENERGY_SAVING[0]}x" in result.stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [p["problem"] for p in data["problems"]] == [c.problem for c in CASES]
    for p in data["problems"]:
        assert p["pipeline_trace"]["meta"]["quant"] == "smx_paper"
        assert p["pipeline_trace"]["meta"]["estimator"]["diffquant"] == "full"
        for row in p["baselines"].values():
            assert row["speedup"] == pytest.approx(row["seconds"] / p["pinta"]["step"]["seconds"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "either --config FILE"),
        (["--config", "no/such.yaml"], "config file not found"),
        (["--compare", "--configs", "no/such/dir"], "no/such/dir"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, fragment):
    result = tqpinn(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_bad_hardware_file_names_the_key(tmp_path):
    hw = tmp_path / "hw.yaml"
    hw.write_text("name: x\nclock_hz: 1.0e9\nwarp_drive: true\n")
    result = tqpinn("--compare", "--hardware", str(hw))
    assert result.returncode == 2
    assert "warp_drive" in result.stderr and "Traceback" not in result.stderr
