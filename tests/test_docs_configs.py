"""Every config the README and docs/*.md show is valid, as written: YAML blocks, inline
`key: value` settings and the `--set` examples of their commands.

Which text is a config (the rule):
- a fenced ```yaml block whose top-level keys include one of the config's sections (problem,
  model, estimator, quant, train, seed); validated by the config loader, and its model built
  when the block names its problem (so that a TT plan it shows is checked too);
- an inline code span `key: value` whose key is a field of exactly one config section (e.g.
  `diffquant: off` of the Stein estimator, `groups: 2` of model.tt); validated inside a minimal
  config of that section, each alternative of `key: a | b` on its own. Spans with other keys
  (hardware files, problem options) and elided ones (holding "...") are skipped;
- a `tqpinn train|hw|problems ... --set key=value` command in a fenced block (continuation
  lines joined); train and hw commands are validated with their --config file, problems
  commands by describing the problem with those options.
Placeholders in prose (`--set key.sub=value`, `quant=Q`) are not in fenced blocks.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tqpinn.pdes import get_problem
from tqpinn.pdes.describe import describe_problem
from tqpinn.train.build import build_model
from tqpinn.train.config import (
    Config,
    ModelConfig,
    SteinConfig,
    TrainConfig,
    TTConfig,
    config_from_dict,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([a-z_]+): ([^`\n]+)`(?!`)")
COMMAND = re.compile(r"^tqpinn (train|hw|problems)\b.*--set\b", re.M)


def _sections() -> dict[str, dict]:
    """Field name -> the minimal config that holds it (a field of several sections: none)."""
    homes: dict[str, list[dict]] = {}
    places = [
        (Config, lambda k, v: {k: v}),
        (SteinConfig, lambda k, v: {"estimator": {"name": "stein", k: v}}),
        (TrainConfig, lambda k, v: {"train": {k: v}}),
        (ModelConfig, lambda k, v: {"model": {k: v}}),
        (TTConfig, lambda k, v: {"model": {"widths": [64, 64], "tt": {**PRS, k: v}}}),
    ]
    for model, place in places:
        for key in model.model_fields:
            if key != "name":
                homes.setdefault(key, []).append(place)
    return {k: v[0] for k, v in homes.items() if len(v) == 1}


PRS = {"layers": [1], "plan": "partial", "n_cores": 3}
"""A TT layer where every TT key applies (groups need plan partial, partial needs 3 cores)."""
PLACE = _sections()


def _blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for lang, body in FENCE.findall(doc.read_text(encoding="utf-8")):
            if (lang == "yaml") == (kind == "yaml"):
                found.append((f"{doc.name}:{body.splitlines()[0][:40]}", body))
    return found


def _yaml_configs() -> list[tuple[str, dict]]:
    configs = []
    for where, body in _blocks("yaml"):
        data = yaml.safe_load(body)
        if isinstance(data, dict) and set(data) & set(Config.model_fields):
            configs.append((where, data))
    return configs


def _inline_settings() -> list[tuple[str, dict]]:
    settings = []
    for doc in DOCS:
        for key, values in INLINE.findall(doc.read_text(encoding="utf-8")):
            if key not in PLACE or "..." in values:
                continue
            for value in values.split(" | "):
                where = f"{doc.name}: `{key}: {value}`"
                settings.append((where, PLACE[key](key, yaml.safe_load(value))))
    return settings


def _commands() -> list[tuple[str, list[str]]]:
    commands = []
    for where, body in _blocks("other"):
        text = body.replace("\\\n", " ")
        for line in COMMAND.finditer(text):
            full = text[line.start() : text.index("\n", line.start())]
            commands.append((where, shlex.split(full, comments=True)))
    return commands


def test_the_docs_show_configs_of_every_kind():
    # The extraction itself must find what the docs are known to hold.
    assert len(_yaml_configs()) >= 5
    assert any("diffquant" in str(s) for _, s in _inline_settings())
    assert {args[1] for _, args in _commands()} >= {"train", "hw", "problems"}


@pytest.mark.parametrize(("where", "data"), _yaml_configs(), ids=lambda v: str(v)[:50])
def test_yaml_blocks_are_valid_configs(where, data, monkeypatch):
    monkeypatch.chdir(ROOT)  # user problems in the docs are relative to the repository root
    config = config_from_dict(data)
    if "problem" in data:
        build_model(config, get_problem(config.problem.name, **config.problem.options))


@pytest.mark.parametrize(("where", "data"), _inline_settings(), ids=lambda v: str(v)[:50])
def test_inline_settings_are_valid(where, data):
    config = config_from_dict(data)
    if config.model.tt is not None:
        build_model(config, get_problem("poisson"))


@pytest.mark.parametrize(("where", "args"), _commands(), ids=lambda v: str(v)[:50])
def test_set_examples_are_valid(where, args, monkeypatch):
    monkeypatch.chdir(ROOT)
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    if args[1] == "problems":
        options = dict(s.split("=", 1) for s in sets)
        describe_problem(args[2], **{k: yaml.safe_load(v) for k, v in options.items()})
        return
    config = load_config(Path(args[args.index("--config") + 1]), sets)
    build_model(config, get_problem(config.problem.name, **config.problem.options))
