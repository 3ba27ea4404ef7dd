"""The TT-rank study: the grid as configs, the selection rule, resumable runs, the plot."""

import re
from pathlib import Path

import pytest
import yaml

from tqpinn.errors import UserError
from tqpinn.studies.reproduce import variant_configs
from tqpinn.studies.tt_rank import (
    DEFAULT_SERIES,
    PIPELINES,
    REFERENCES,
    SERIES,
    choose,
    grid,
    plot_tt_rank,
    study_configs,
    tt_rank_study,
)
from tqpinn.train.checkpoint import list_checkpoints
from tqpinn.train.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN_LINE = re.compile(r"(reuse|resume|train)\s+\S+/(\w+)/seed_\d+ \(seed \d+\)")


def tiny_configs(directory: Path) -> Path:
    """A configs folder whose quick Poisson pipeline trains 2 steps of an 8-wide network with
    both hidden-to-hidden layers TT (8 = 2·2·2 on each side, automatic), 4 Stein pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    data = load_config(CONFIGS / "poisson2d_quick.yaml").to_dict()
    data["model"]["widths"] = [8, 8, 8]
    data["model"]["tt"].update(layers=[1, 2], ranks=2, shapes=None, groups=1)
    data["estimator"]["pairs"] = 4
    data["train"].update(steps=2, eval_every=1, checkpoint_every=1, eval_points=64)
    (directory / "poisson2d_quick.yaml").write_text(yaml.safe_dump(data))
    return directory


def test_the_grid_is_every_rank_placement_and_init():
    points = grid([2, 4], ["both", "first"], ["xavier", "torch"])
    assert [p.key for p in points] == [
        "r2_both_xavier",
        "r2_both_torch",
        "r2_first_xavier",
        "r2_first_torch",
        "r4_both_xavier",
        "r4_both_torch",
        "r4_first_xavier",
        "r4_first_torch",
    ]
    with pytest.raises(UserError, match=r"unknown placements \['last'\]; choose from"):
        grid([2], ["both", "last"])
    with pytest.raises(UserError, match=r"TT ranks must be positive integers, got \[0\]"):
        grid([0, 2])


def test_a_point_changes_only_the_tt_layers_ranks_and_init_of_each_series():
    points = grid([2, 16], ["both", "first"], ["torch"])
    configs = study_configs(points, "paper", "poisson2d")
    variants = variant_configs("paper", "poisson2d")
    assert configs["references"] == {key: variants[key] for key in REFERENCES}
    for name in SERIES:
        for p in points:
            data = configs["series"][name][p.key].to_dict()
            tt = data["model"]["tt"]
            assert (tt["ranks"], tt["init"]) == (p.rank, "torch")
            assert tt["layers"] == ([1, 2] if p.placement == "both" else [1])
            want = variants[name].to_dict()
            for k in ("layers", "ranks", "init"):
                tt.pop(k), want["model"]["tt"].pop(k)
            assert data == want, (name, p.key)


def test_given_shapes_stay_with_their_layer():
    data = {"model": {"tt": {"layers": [1, 2], "shapes": [None, [[2, 4], [4, 2]]]}}}
    (first,) = grid([3], ["first"])
    assert first.apply(data)["model"]["tt"]["shapes"] is None
    data["model"]["tt"]["shapes"] = [[[2, 4], [4, 2]], None]
    assert first.apply(data)["model"]["tt"]["shapes"] == [[[2, 4], [4, 2]]]


def run(n_params: int, rel_l2: float, rel_l2_fp32: float) -> dict:
    return {"n_params": n_params, "rel_l2": rel_l2, "rel_l2_fp32": rel_l2_fp32}


def test_the_choice_is_the_fewest_parameters_within_the_target():
    # Powers of two: 1.5 x 0.25 = 0.375 exactly, so "at the bound" is tested, not rounding.
    reference = run(1000, 0.25, 0.25)
    rows = {
        "tiny_but_bad": run(100, 0.5, 0.25),
        "at_bound": run(200, 0.375, 0.5),
        "same_size_better": run(200, 0.3125, 0.5),
        "big_and_good": run(500, 0.125, 0.125),
    }
    assert choose(rows, reference) == {
        "point": "same_size_better",
        "n_params": 200,
        "rel_l2": 0.3125,
        "ratio": 1.25,
        "compression": 5.0,
    }
    del rows["same_size_better"]
    assert choose(rows, reference)["point"] == "at_bound"
    # Under the FP32-GEMM evaluation the small network qualifies and the 200s do not.
    assert choose(rows, reference, "rel_l2_fp32")["point"] == "tiny_but_bad"
    assert choose(rows, reference, target=0.25) is None
    with pytest.raises(UserError, match=r"unknown metric 'l1'; choose from"):
        choose(rows, reference, "l1")


def test_the_study_runs_every_point_and_reuses_or_resumes_on_a_rerun(tmp_path):
    configs = tiny_configs(tmp_path / "configs")
    points = grid([1, 2], ["both", "first"])
    out = tmp_path / "study"
    first = tt_rank_study(
        out, points, "quick", series=SERIES, log=lambda _: None, configs_dir=configs
    )
    assert first["current"] == "r2_both_xavier"
    assert set(first["series"]) == set(SERIES)
    for rows in first["series"].values():
        assert list(rows) == [p.key for p in points]
        n = {key: row["n_params"] for key, row in rows.items()}
        # Rank 2 has more core parameters than rank 1; two TT layers fewer than one.
        assert n["r1_both_xavier"] < n["r2_both_xavier"] < n["r2_first_xavier"]
        assert n["r1_both_xavier"] < n["r1_first_xavier"] < first["reference"]["n_params"]
        assert all(row["steps"] == 2 and row["rel_l2"] > 0 for row in rows.values())
    fp32 = first["series"]["fp32_se_tt"]
    assert all(row["rel_l2_fp32"] == row["rel_l2"] for row in fp32.values())
    assert first["reference"] == {"variant": "fp32_se_dense", **first["references"][REFERENCES[0]]}
    # One choice per quantized pipeline, reference and metric, each the rule over its own rows.
    assert list(first["choice"]) == list(PIPELINES)
    for name, by_reference in first["choice"].items():
        assert list(by_reference) == list(REFERENCES)
        for reference, choices in by_reference.items():
            for metric, chosen in choices.items():
                want = choose(first["series"][name], first["references"][reference], metric)
                assert chosen == want
    assert set(first["configs"]) == set(PIPELINES)

    # Interrupt one run after its first step: it resumes; every other run is reused.
    run_dir = out / "runs/poisson2d/full_pipeline_taylor/r1_first_xavier/seed_0"
    (run_dir / "metrics.json").unlink()
    list_checkpoints(run_dir)[-1].unlink()
    messages: list[str] = []
    again = tt_rank_study(
        out, points, "quick", series=SERIES, log=messages.append, configs_dir=configs
    )
    actions = [m.groups() for m in map(RUN_LINE.fullmatch, map(str.strip, messages)) if m]
    assert len(actions) == len(REFERENCES) + len(SERIES) * len(points)
    assert [a for a in actions if a[0] != "reuse"] == [("resume", "r1_first_xavier")]
    # The trainer's resume is bit-identical: the same errors and choice as the first study.
    for name in SERIES:
        for key, row in again["series"][name].items():
            assert row["rel_l2"] == first["series"][name][key]["rel_l2"]
    assert again["choice"] == first["choice"]

    # A rank limit on the FP32 series reads only its points up to that rank; nothing trains.
    # The default series leave the Stein pipeline out: its choice is absent, not None.
    messages.clear()
    limited = tt_rank_study(
        out, points, "quick", log=messages.append, configs_dir=configs, max_rank={SERIES[0]: 1}
    )
    assert list(limited["series"]) == list(DEFAULT_SERIES)
    assert list(limited["choice"]) == ["full_pipeline_taylor"]
    assert list(limited["series"][SERIES[0]]) == ["r1_both_xavier", "r1_first_xavier"]
    assert limited["series"][SERIES[-1]] == again["series"][SERIES[-1]]
    assert not [m for m in messages if re.match(r"\s*(train|resume)", m)]
    with pytest.raises(UserError, match=r"unknown series \['fp16'\]; choose from"):
        tt_rank_study(out, points, "quick", configs_dir=configs, max_rank={"fp16": 1})

    plot = tmp_path / "tt_rank.png"
    plot_tt_rank(again, plot)
    assert plot.read_bytes().startswith(b"\x89PNG")
