"""Config validation: every bad input is one UserError naming the key and the valid choices."""

import pytest

from tqpinn.errors import UserError
from tqpinn.train.config import Config, apply_overrides, config_from_dict, load_config


def test_defaults_are_valid():
    cfg = config_from_dict({})
    assert cfg.problem.name == "poisson"
    assert cfg.estimator.name == "autodiff"
    assert cfg.train.steps == 1000


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"bogus": 1}, "unknown config key 'bogus'"),
        ({"train": {"stpes": 3}}, "unknown config key 'train.stpes'"),
        ({"train": {"steps": 0}}, "'train.steps'"),
        ({"train": {"steps": "many"}}, "'train.steps'"),
        ({"train": {"lr": -1e-3}}, "'train.lr'"),
        ({"train": {"weights": {"boundary": -1}}}, "'train.weights.boundary'"),
        ({"train": {"schedule": "step"}}, "'linear', 'cosine' or 'constant'"),
        ({"estimator": {"name": "stein", "sigma": 0}}, "'estimator.sigma'"),
        ({"estimator": {"name": "stein", "sigma": -0.1}}, "'estimator.sigma'"),
        ({"estimator": {"name": "stein", "pairs": 0}}, "'estimator.pairs'"),
        ({"estimator": {"name": "stein", "directions": "gpu"}}, "'cpu' or 'device'"),
        ({"estimator": {"name": "finite"}}, "'autodiff', 'stein', 'stencil', 'taylor'"),
        ({"estimator": {"name": "stencil", "h": 0}}, "'estimator.h'"),
        ({"estimator": {"name": "stencil", "diffquant": "on"}}, "'estimator.diffquant'"),
        ({"estimator": {"name": "stencil", "pairs": 8}}, "unknown config key 'estimator.pairs'"),
        ({"estimator": {"name": "taylor", "h": 0.01}}, "unknown config key 'estimator.h'"),
        ({"model": {"activation": "relu"}}, "'tanh' or 'sin'"),
        ({"model": {"widths": [64, 0]}}, "'model.widths.1'"),
        ([1, 2], "must be a mapping"),
    ],
)
def test_bad_values_name_the_key(data, fragment):
    with pytest.raises(UserError) as info:
        config_from_dict(data)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_overrides_parse_yaml_values_and_nest():
    data = apply_overrides(
        {"train": {"steps": 5}}, ["train.steps=7", "estimator.name=stein", "model.widths=[8, 8]"]
    )
    cfg = config_from_dict(data)
    assert cfg.train.steps == 7 and cfg.estimator.name == "stein" and cfg.model.widths == [8, 8]


@pytest.mark.parametrize("item", ["novalue", "=3", "train.steps.x=3"])
def test_bad_overrides(item):
    with pytest.raises(UserError):
        config_from_dict(apply_overrides({"train": {"steps": 5}}, [item]))


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(UserError, match="UTF-8"):
        load_config(binary)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(scalar)


def test_round_trip_through_dict():
    cfg = config_from_dict({"estimator": {"name": "stein", "pairs": 8}, "seed": 3})
    assert Config.model_validate(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("quant", "fragment"),
    [
        ("smx_papr", "unknown quant preset 'smx_papr'"),
        ({"bogus_role": 1}, "unknown keys ['bogus_role']; choose from ['base', 'fwd.input'"),
        ({"fwd.input": {"bits": 99}}, "'quant.fwd.input.bits': Input should be less than"),
    ],
)
def test_bad_quant_names_the_key(quant, fragment):
    with pytest.raises(UserError, match=r"^config key 'quant") as info:
        config_from_dict({"quant": quant})
    assert fragment in str(info.value)


def test_extends_merges_mappings_and_replaces_other_values(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "seed: 3\nmodel: {widths: [8, 8], activation: sin}\n"
        "train: {steps: 50, points: {interior: 10, boundary: 10}}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nmodel: {widths: [4]}\ntrain: {points: {interior: 20}}\n"
    )
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.seed == 3
    assert cfg.model.widths == [4] and cfg.model.activation == "sin"
    assert cfg.train.steps == 50 and cfg.train.points == {"interior": 20, "boundary": 10}
    assert "extends" not in cfg.to_dict()


def test_extends_chain_and_null_replaces(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {widths: [8], tt: {layers: [0], ranks: 2}}\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.yaml").write_text("extends: ../a.yaml\nseed: 5\n")
    (sub / "c.yaml").write_text("extends: b.yaml\nmodel: {tt: null}\n")
    cfg = load_config(sub / "c.yaml", ["train.steps=7"])
    assert cfg.model.tt is None and cfg.model.widths == [8]
    assert cfg.seed == 5 and cfg.train.steps == 7


def test_extends_errors_name_the_file(tmp_path):
    (tmp_path / "loop_a.yaml").write_text("extends: loop_b.yaml\n")
    (tmp_path / "loop_b.yaml").write_text("extends: loop_a.yaml\n")
    with pytest.raises(UserError, match="makes a loop"):
        load_config(tmp_path / "loop_a.yaml")
    (tmp_path / "missing.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(UserError, match=r"extends 'nowhere\.yaml', which is not a file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("extends: [1]\n")
    with pytest.raises(UserError, match="'extends' must name a YAML file"):
        load_config(tmp_path / "bad.yaml")


def test_the_forward_only_estimators_as_the_docs_write_them():
    taylor = config_from_dict({"estimator": {"name": "taylor"}}).estimator
    stencil = config_from_dict({"estimator": {"name": "stencil", "h": 0.01, "diffquant": "full"}})
    assert taylor.name == "taylor"
    assert (stencil.estimator.h, stencil.estimator.diffquant) == (0.01, "full")
    assert config_from_dict({"estimator": {"name": "stencil"}}).estimator.h == 0.01


def test_diffquant_off_as_the_docs_write_it(tmp_path):
    # YAML 1.1 reads an unquoted `off` as false: in a file and through --set alike.
    path = tmp_path / "c.yaml"
    path.write_text("estimator: {name: stein, diffquant: off}\n")
    assert load_config(path).estimator.diffquant == "off"
    assert (
        load_config(None, ["estimator.name=stein", "estimator.diffquant=off"]).estimator.diffquant
        == "off"
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        # Only false means "off": true names no variant, and no other key takes a boolean.
        ({"estimator": {"name": "stein", "diffquant": True}}, "'estimator.diffquant'"),
        ({"estimator": {"name": "stein", "value": False}}, "'estimator.value'"),
        ({"train": {"schedule": False}}, "'train.schedule'"),
        ({"model": {"widths": []}}, "'model.widths': List should have at least 1 item"),
        ({"train": {"max_rollbacks": 0}}, "'train.max_rollbacks'"),
        ({"train": {"explode_factor": 1}}, "'train.explode_factor'"),
        ({"train": {"explode_factor": True}}, "'train.explode_factor'"),
    ],
)
def test_mistakes_that_used_to_pass_are_refused(data, fragment):
    with pytest.raises(UserError, match=fragment):
        config_from_dict(data)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=r"c\.yaml holds no keys.*leave out --config"):
        load_config(path)


def test_a_user_problem_path_is_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "p.py").write_text("")
    monkeypatch.chdir(tmp_path)
    config = config_from_dict({"problem": {"name": "p.py:P"}})
    assert config.problem.name == f"{tmp_path / 'p.py'}:P"
    # Registered names, modules and files that do not exist stay as written.
    for name in ("poisson", "pkg.mod:P", "missing.py:P"):
        assert config_from_dict({"problem": {"name": name}}).problem.name == name
