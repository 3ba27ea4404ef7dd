"""`tqpinn hw --sweep`: design points expanded and re-costed, fronts and targets, bad specs."""

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from cli_process import run_tqpinn
from tqpinn.errors import UserError
from tqpinn.hw.area import DEFAULT_BRICKS_PER_PE, load_area_model
from tqpinn.hw.hardware import DEFAULT_HARDWARE, load_hardware
from tqpinn.hw.pareto import Candidate, closest, pareto_front, smallest_change
from tqpinn.hw.pinta import Pinta
from tqpinn.hw.sweep_spec import (
    SweepSpec,
    check_parameters,
    design_points,
    hardware_at,
    macs_per_pe_cycle,
)
from tqpinn.hw.trace import Trace
from tqpinn.studies.hw_compare import CASES, trace_case, trace_name
from tqpinn.train.config import load_config

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load(resources.files("tqpinn.hw").joinpath(DEFAULT_HARDWARE).read_text())
SHIPPED_SPEC = REPO / "configs" / "sweeps" / "pinta_default_sweep.yaml"


def test_bricks_give_the_default_descriptions_throughputs():
    # pinta_default.yaml: 16 bricks per PE -> 4, 2, 1 and 1/3 MACs per cycle.
    for mode in BASE["modes"].values():
        got = macs_per_pe_cycle(mode["a_bits"], mode["b_bits"], mode["integer"], 16)
        assert got == pytest.approx(mode["macs_per_pe_cycle"])
    # 64 bricks: 64 // 4, 64 // 6, 64 // 9, 64 // 36.
    assert [macs_per_pe_cycle(a, b, True, 64) for a, b in ((8, 8), (12, 8), (12, 12))] == [
        16,
        10,
        7,
    ]
    assert macs_per_pe_cycle(32, 32, False, 64) == 1


def test_hardware_at_applies_keys_and_scales_static_power_with_the_array():
    hw = hardware_at(BASE, {"array.rows": 64, "array.bricks_per_pe": 32, "clock_hz": 1e9}, "t")
    assert (hw.array.rows, hw.array.cols, hw.clock_hz) == (64, 32, 1e9)
    assert hw.modes["int8xint8"].macs_per_pe_cycle == 8
    assert hw.static_power_w == pytest.approx(BASE["static_power_w"] * 2 * 2)
    assert hardware_at(BASE, {}, "t") == load_hardware()


def test_area_proxy_by_hand():
    area = load_area_model().area_mm2(load_hardware(), DEFAULT_BRICKS_PER_PE)
    logic = (28 / 45) ** 2 * 1e-6
    assert area["bricks"] == pytest.approx(32 * 32 * 16 * 70.5 * logic)
    assert area["vector"] == pytest.approx(256 * 11884 * logic)
    assert area["sram"] == pytest.approx(2**20 * 8 * 0.127e-6 / 0.7)
    assert area["total"] == pytest.approx(area["bricks"] + area["vector"] + area["sram"])


def test_design_points_are_the_grid_without_duplicates():
    spec = SweepSpec(
        traces=Path("t"),
        problems=["poisson2d"],
        baselines=["a100"],
        grid={"estimator": ["stein", "taylor"], "stein_pairs": [None, 8], "clock_hz": [1e9]},
        points=[{"estimator": "taylor", "clock_hz": 1e9}],
    )
    points = design_points(spec)
    # Stein at two pair counts, Taylor once (pairs mean nothing to it); the explicit point is
    # the grid's Taylor point again.
    assert [(p["estimator"], p.get("stein_pairs")) for p in points] == [
        ("stein", None),
        ("stein", 8),
        ("taylor", None),
    ]


def test_pareto_front_and_target_search():
    speedup, saving = [1, 2, 3, 2.5, 0.5], [5, 4, 1, 0.5, 6]
    assert pareto_front(speedup, saving) == [4, 0, 1, 2]
    cands = [
        Candidate(0, {"a": 1, "b": 2}, 10, 200, 1.0),
        Candidate(1, {"c": 3}, 6, 170, 5.0),
        Candidate(2, {"d": 4}, 6, 170, 2.0),
        Candidate(3, {}, 1, 1, 0.5),
    ]
    assert smallest_change(cands, 5.5, 159.6).index == 2  # one change, the smaller area
    assert smallest_change(cands, 11, None) is None
    assert closest(cands, 100, 1000).index == 0


def test_unknown_parameters_name_the_choices():
    spec = SweepSpec(
        traces=Path("t"), problems=["poisson2d"], baselines=["a100"], grid={"warp": [1]}
    )
    with pytest.raises(UserError, match=r"unknown sweep parameter 'warp'; choose from .*clock_hz"):
        check_parameters(spec, BASE, "s.yaml")
    spec = SweepSpec(
        traces=Path("t"), problems=["poisson2d"], baselines=["a100"], grid={"estimator": ["x"]}
    )
    with pytest.raises(UserError, match="unknown estimator 'x'; choose from"):
        check_parameters(spec, BASE, "s.yaml")


def test_shipped_sweep_spec_is_valid():
    spec = yaml.safe_load(SHIPPED_SPEC.read_text())
    check_parameters(SweepSpec.model_validate(spec), BASE, str(SHIPPED_SPEC))
    assert (REPO / spec["traces"]).is_dir()


def tqpinn(*args, cwd=None):
    return run_tqpinn("hw", *args, cwd=cwd)


@pytest.fixture(scope="module")
def tiny_traces(tmp_path_factory) -> tuple[Path, Path]:
    """(configs, traces) of a tiny Poisson recipe: the compare's four steps, saved."""
    root = tmp_path_factory.mktemp("sweep")
    configs, traces = root / "configs", root / "traces"
    configs.mkdir()
    traces.mkdir()
    data = load_config(REPO / "configs" / CASES[0].pipeline).to_dict()
    data["model"]["widths"] = [16, 16, 16]
    data["model"]["tt"] = {**data["model"]["tt"], "shapes": None, "n_cores": 3}
    data["estimator"]["pairs"] = 4
    data["train"]["points"] = dict.fromkeys(data["train"]["points"], 6)
    (configs / CASES[0].pipeline).write_text(yaml.safe_dump(data))
    trace_case(CASES[0], load_hardware(), configs, measure=False, trace_dir=traces)
    return configs, traces


def write_spec(path: Path, configs: Path, traces: Path, **changes) -> Path:
    spec = {
        "traces": str(traces),
        "configs": str(configs),
        "problems": ["poisson2d"],
        "baselines": ["a100", "h100_measured"],
        "grid": {
            "estimator": ["stein", "taylor", "stencil"],
            "stein_pairs": [None, 2],
            "clock_hz": [5e8, 1e9],
            "array.bricks_per_pe": [16, 64],
        },
        **changes,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def test_sweep_recosts_every_point_and_finds_the_targets(tiny_traces, tmp_path):
    configs, traces = tiny_traces
    out = tmp_path / "out"
    # Targets every point reaches: the answer is the default design, no change at all.
    spec = write_spec(
        tmp_path / "s.yaml", configs, traces, targets={"speedup": 1e-9, "energy_saving": 1e-9}
    )
    result = tqpinn("--sweep", str(spec), "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert len(data["points"]) == 4 * 2 * 2  # stein x 2 pairs, taylor, stencil; 2 clocks; 2 bricks
    assert (out / "pareto_poisson2d.png").read_bytes()[:4] == b"\x89PNG"
    # The re-traced Stein pipeline at 2 pairs is cached under its config's digest.
    assert len(list((out / "traces").glob("poisson2d_pipeline_stein_pairs2_*.json"))) == 1
    p = data["problems"]["poisson2d"]
    # A point's cost is PINTA's on its own description and workload, recomputed here.
    i = next(
        j
        for j, pt in enumerate(data["points"])
        if pt["estimator"] == "taylor" and pt["clock_hz"] == 1e9 and pt["array.bricks_per_pe"] == 64
    )
    trace = Trace.load(traces / trace_name("poisson2d", "taylor"))
    report = Pinta(hardware_at(BASE, data["points"][i], "t")).run(trace)
    assert p["pinta_seconds"][i] == pytest.approx(report.seconds)
    assert p["pinta_energy_j"][i] == pytest.approx(report.energy_j)
    a100 = p["baselines"]["a100"]
    both = a100["what_it_takes"]["any_change"]["both"]
    assert both["changes"] == {}
    assert both["speedup"] == pytest.approx(a100["default"]["speedup"])
    front = a100["pareto_front"]
    speedups = [a100["seconds"] / s for s in p["pinta_seconds"]]
    savings = [a100["energy_j"] / e for e in p["pinta_energy_j"]]
    for k in range(len(speedups)):  # nothing dominates a front point
        for f in front:
            assert not (speedups[k] > speedups[f] and savings[k] > savings[f])
    assert "h100_measured" in p["baselines"]
    # Targets nothing reaches: no answer, the nearest miss instead (with and without a
    # change of workload).
    spec = write_spec(
        tmp_path / "s2.yaml", configs, traces, targets={"speedup": 1e9, "energy_saving": 1e9}
    )
    result = tqpinn("--sweep", str(spec), "--out", str(out))
    assert result.returncode == 0, result.stderr
    a100 = json.loads((out / "sweep.json").read_text())["problems"]["poisson2d"]["baselines"][
        "a100"
    ]
    for scope in ("any_change", "hardware_only"):
        assert a100["what_it_takes"][scope]["both"] is None
    # The nearest miss of targets this far away: the point of the largest smaller gain.
    best = a100["what_it_takes"]["any_change"]["best_balanced"]
    worse_ratio = [min(s, e) / 1e9 for s, e in zip(speedups, savings, strict=True)]
    assert best["point"] == max(range(len(worse_ratio)), key=worse_ratio.__getitem__)
    hardware_only = a100["what_it_takes"]["hardware_only"]["best_balanced"]
    assert "estimator" not in hardware_only["changes"]
    assert "not reached" in result.stdout


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"grid": {"array.rowz": [8]}}, "unknown sweep parameter 'array.rowz'; choose from"),
        ({"baselines": ["tpu"]}, "unknown baseline 'tpu'; choose from"),
        ({"problems": ["wave"]}, "unknown problem 'wave'; choose from"),
        ({"gird": {}}, "unknown sweep key 'gird'; choose from"),
        ({"grid": {"clock_hz": [-1]}}, "clock_hz"),
    ],
)
def test_bad_specs_exit_2_with_one_line(tiny_traces, tmp_path, changes, fragment):
    configs, traces = tiny_traces
    spec = write_spec(tmp_path / "s.yaml", configs, traces, **changes)
    result = tqpinn("--sweep", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_traces_of_another_config_are_refused_not_costed(tiny_traces, tmp_path):
    configs, traces = tiny_traces
    changed = tmp_path / "configs"
    changed.mkdir()
    data = yaml.safe_load((configs / CASES[0].pipeline).read_text())
    data["model"]["tt"]["ranks"] = 3  # the recipe changed after the traces were saved
    (changed / CASES[0].pipeline).write_text(yaml.safe_dump(data))
    spec = write_spec(tmp_path / "s.yaml", changed, traces, grid={"stein_pairs": [None, 2]})
    result = tqpinn("--sweep", str(spec), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "poisson2d_pipeline.json was recorded for another config" in line
    assert "tqpinn hw --compare --out" in line


def test_sweep_needs_out_and_its_own_hardware_key(tmp_path):
    result = tqpinn("--sweep", str(SHIPPED_SPEC))
    assert result.returncode == 2 and "--sweep needs --out" in result.stderr
    hw = tmp_path / "hw.yaml"
    hw.write_text("name: x\n")
    result = tqpinn("--sweep", str(SHIPPED_SPEC), "--hardware", str(hw), "--out", str(tmp_path))
    assert result.returncode == 2 and "spec's 'hardware' key" in result.stderr
