"""The PRS experiment at tiny sizes: layer errors summarised over seeds, every plan trained in
its own run folder with the same parameters, the plot written."""

import statistics
from pathlib import Path

import pytest

from tqpinn.studies.prs import PAPER_CASES, all_plans, paper_layer_errors, summarize_layer_errors
from tqpinn.studies.prs_experiment import plot_prs, prs_experiment
from tqpinn.studies.prs_training import FP32_REFERENCE, TRAIN_PLANS, train_plans

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_layer_errors_of_every_case_plan_and_merge_and_their_summary():
    case = PAPER_CASES[2]  # poisson2d_hidden: 256 x 256, 4 cores
    lines = []
    rows = paper_layer_errors(rows=8, seeds=2, cases=[case], log=lines.append)
    plans = len(all_plans(4))
    assert len(rows) == 2 * 2 * plans  # merges x seeds x plans
    assert lines == [f"layer errors: {case.name}, merge {m}" for m in ("fp32", "quantized")]
    assert all(r[k] > 0 for r in rows for k in ("rel_err_output", "rel_err_grad_input"))
    summary = summarize_layer_errors(rows)
    assert len(summary) == 2 * plans
    for entry in summary:
        same = [
            r["rel_err_output"]
            for r in rows
            if (r["merge"], r["plan"]) == (entry["merge"], entry["plan"])
        ]
        assert entry["rel_err_output"] == statistics.mean(same)
        assert entry["rel_err_output_std"] == statistics.stdev(same)


def test_summary_of_one_seed_has_zero_spread():
    row = {"merge": "fp32", "case": "c", "plan": "sequential", "data_path_depth": 3}
    errors = {"rel_err_output": 0.1, "rel_err_grad_input": 0.2, "rel_err_grad_cores": 0.3}
    (entry,) = summarize_layer_errors([{**row, **errors}])
    assert entry["rel_err_grad_cores"] == 0.3 and entry["rel_err_grad_cores_std"] == 0.0


@pytest.fixture
def tiny_tt_configs(tmp_path: Path) -> Path:
    (tmp_path / "tiny_tt.yaml").write_text(
        f"extends: {CONFIGS / 'poisson2d_smx_se_tt.yaml'}\n"
        "train: {points: {interior: 4, boundary: 4}, eval_points: 64}\n"
    )
    return tmp_path


def test_train_plans_trains_every_plan_in_its_own_folder(tiny_tt_configs, tmp_path):
    runs = tmp_path / "runs"
    lines = []
    rows = train_plans(
        tiny_tt_configs, runs, steps=1, pairs=2, problems={"tiny": "tiny_tt.yaml"}, log=lines.append
    )
    assert [r["plan"] for r in rows] == [*TRAIN_PLANS, FP32_REFERENCE]
    assert len(lines) == len(rows)
    assert sorted(p.name for p in runs.iterdir()) == [
        "tiny_prs",
        "tiny_reconstruct",
        "tiny_sequential",
        "tiny_sequential_fp32",
    ]
    plans = {r["plan"]: r["model_tt"]["plan"] for r in rows}
    assert plans == {
        "sequential": "sequential",
        "PRS (2 groups)": "partial",
        "reconstruct": "reconstruct",
        FP32_REFERENCE: "sequential",
    }
    # a contraction plan changes how the cores are multiplied, never the parameters
    assert len({r["n_params"] for r in rows}) == 1
    assert rows[-1]["overrides"][-1] == "quant=fp32"
    assert all("estimator.pairs=2" in r["overrides"] for r in rows)
    assert all(r["rel_l2"] > 0 and r["wall_seconds"] > 0 for r in rows)


def test_prs_experiment_without_training_and_its_plot(tmp_path):
    result = prs_experiment(
        CONFIGS, tmp_path / "runs", seeds=1, rows=4, with_training=False, settings={"rows": 4}
    )
    assert result["training"] == [] and result["settings"] == {"rows": 4}
    assert not (tmp_path / "runs").exists()
    assert {r["case"] for r in result["layer_summary"]} == {c.name for c in PAPER_CASES}
    training = [{"problem": "tiny", "plan": p, "rel_l2": 0.1} for p in TRAIN_PLANS]
    for name, runs_done in (("layers.png", []), ("both.png", training)):
        plot_prs(result["layer_summary"], runs_done, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
