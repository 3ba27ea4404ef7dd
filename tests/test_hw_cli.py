"""``tqpinn hw``: one config's step costed end to end, the per-problem comparison, user errors."""

import json
from pathlib import Path

import pytest
import yaml

from cli_process import run_tqpinn
from tqpinn.hw.measured import load_timing_file
from tqpinn.hw.report import THIS_MACHINE
from tqpinn.studies.hw_compare import (
    CASES,
    PAPER_ENERGY_SAVING,
    PAPER_SPEEDUP,
    PIPELINES,
    THIS_MACHINE_MEASURED,
    case_configs,
    trace_name,
)
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
    return run_tqpinn("hw", *args, cwd=cwd)


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
    timing = tmp_path / "a100_timing.yaml"
    timing.write_text(
        yaml.safe_dump(
            {
                "name": "a100_lab",
                "label": "A100, timed in a lab",
                "roofline": "a100",
                "power_w": 250.0,
                "steps": {"poisson2d": {"fp32_ad_dense": 0.004}},
                "sources": {"steps": "a test", "power_w": "a test"},
            }
        )
    )
    result = tqpinn(
        "--compare", "--configs", str(configs), "--out", str(tmp_path), "--timings", str(timing)
    )
    assert result.returncode == 0, result.stderr
    assert f"speedup {PAPER_SPEEDUP[0]}x-{PAPER_SPEEDUP[1]}x" in result.stdout
    assert f"energy saving {PAPER_ENERGY_SAVING[0]}x" in result.stdout
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [p["problem"] for p in data["problems"]] == [c.problem for c in CASES]
    for p in data["problems"]:
        assert set(p["pipelines"]) == set(PIPELINES)
        for estimator, pipe in p["pipelines"].items():
            assert pipe["trace"]["meta"]["quant"] == "smx_paper"
            assert pipe["trace"]["meta"]["estimator"]["name"] == estimator
            assert (tmp_path / trace_name(p["problem"], estimator)).is_file()
        assert p["pipelines"]["stein"]["trace"]["meta"]["estimator"]["diffquant"] == "full"
        for row in p["baselines"].values():
            for e, pipe in p["pipelines"].items():
                pinta = pipe["pinta"]["step"]
                assert row["speedup"][e] == pytest.approx(row["seconds"] / pinta["seconds"])
        # Measured on the spot: this machine's step beside its own roofline.
        here = p["baselines"][THIS_MACHINE_MEASURED]
        assert here["kind"] == "measured" and here["roofline"] == THIS_MACHINE
        assert here["roofline_error"] == pytest.approx(
            p["baselines"][THIS_MACHINE]["seconds"] / here["seconds"] - 1
        )
        assert here["energy_j"] is None  # no power meter, no TDP for this machine
    poisson, heat, hjb = (
        {n: r for n, r in p["baselines"].items() if r["kind"] == "measured"}
        for p in data["problems"]
    )
    # The packaged H100 timings (Poisson and Heat measured; HJB not) and the given file.
    assert set(poisson) == {"h100_measured", "a100_lab", THIS_MACHINE_MEASURED}
    assert set(heat) == {"h100_measured", THIS_MACHINE_MEASURED}
    assert set(hjb) == {THIS_MACHINE_MEASURED}
    lab = poisson["a100_lab"]
    assert lab["seconds"] == 0.004 and lab["power_basis"] == "measured"
    assert lab["energy_j"] == pytest.approx(250.0 * 0.004)
    assert poisson["h100_measured"]["power_basis"] == "TDP of h100"
    # This machine's timings come back as a timing file that --timings reads.
    again = load_timing_file(tmp_path / "this_machine_timing.yaml")
    assert again.step_seconds("hjb20d", "fp32_ad_dense") == hjb[THIS_MACHINE_MEASURED]["seconds"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give one of --config FILE"),
        (["--config", "no/such.yaml"], "config file not found"),
        (["--compare", "--configs", "no/such/dir"], "no/such/dir"),
        (["--compare", "--timings", "no/such.yaml"], "timing file not found"),
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
