"""The CUDA bench's CPU mode on tiny configs: every section runs, CPU agrees with itself
exactly, the step-time ratios are made of the step times; a failing section is recorded."""

from pathlib import Path

import pytest

from tqpinn.studies.cuda_bench import (
    AGREEMENT_QUANTS,
    STEP_VARIANTS,
    CudaCases,
    bench_cuda,
    run_sections,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_TRAIN = "train: {points: {interior: 4, boundary: 4}, eval_points: 64}\n"


@pytest.fixture
def tiny_configs(tmp_path: Path) -> Path:
    (tmp_path / "tiny_ad.yaml").write_text(
        f"extends: {CONFIGS / 'poisson2d_fp32_ad.yaml'}\nmodel: {{widths: [8, 8]}}\n{TINY_TRAIN}"
    )
    (tmp_path / "tiny_se.yaml").write_text(
        "extends: tiny_ad.yaml\nestimator: {name: stein, sigma: 0.01, pairs: 4}\n"
    )
    return tmp_path


def test_bench_cuda_on_cpu_runs_every_section(tiny_configs):
    cases = CudaCases(
        quantizer_formats=(),  # compiling takes long: tests/test_quant_compiled.py runs it
        smoke={"tiny stein": ("tiny_se.yaml", ("quant=smx_paper",))},
        agreement="tiny_se.yaml",
        step_time_presets=("tiny_se.yaml",),
        step_time_fp32=("tiny_ad.yaml",),
        recipes=("tiny_ad.yaml",),
    )
    seen = []
    result = bench_cuda(
        tiny_configs,
        "cpu",
        smoke_steps=1,
        agreement_steps=2,
        rounds=1,
        recipe_steps=2,
        cases=cases,
        on_section=lambda name, r: seen.append((name, set(r))),
    )
    sections = ["quantizer", "smoke", "agreement", "step_time", "recipes"]
    assert [name for name, _ in seen] == sections
    # the callback sees each section's result as soon as it is finished
    assert all(name in keys and f"{name}_seconds" in keys for name, keys in seen)
    for name in sections:
        assert "error" not in result[name], result[name]
        assert result[f"{name}_seconds"] > 0

    smoke = result["smoke"]["tiny stein"]
    assert {"config.yaml", "metrics.json", "metrics.jsonl"} <= set(smoke["outputs"])
    assert smoke["rel_l2"] > 0

    # CPU against CPU: the same arithmetic, so the same parameters to the last bit
    assert set(result["agreement"]) == set(AGREEMENT_QUANTS)
    for r in result["agreement"].values():
        assert r == {"steps": 2, "relative_parameter_difference": 0.0}

    timed = result["step_time"]["tiny_se.yaml"]
    for p in STEP_VARIANTS:
        assert timed[f"{p}_step_s"] > 0
    for p in list(STEP_VARIANTS)[1:]:
        assert timed[f"{p}_over_fp32"] == timed[f"{p}_step_s"] / timed["fp32_step_s"]
    assert set(result["step_time"]["tiny_ad.yaml"]) == {"fp32_step_s"}

    recipe = result["recipes"]["tiny_ad.yaml"]
    assert recipe["steps"] == 2
    assert recipe["rel_l2"] > 0 and recipe["max_abs_err"] > 0


def test_a_failing_section_is_recorded_and_the_next_one_runs():
    def broken():
        raise RuntimeError("device lost")

    result = {}
    run_sections({"first": broken, "second": lambda: {"ok": 1}}, result, lambda n, r: None)
    assert "RuntimeError: device lost" in result["first"]["error"]
    assert result["second"] == {"ok": 1}
    assert result["first_seconds"] >= 0 and result["second_seconds"] >= 0
