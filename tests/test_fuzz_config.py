"""Fuzzed bad input: every broken config gives exit code 2 and one line naming the key or file,
never a traceback and never a run that starts.

The CLI entry runs in-process (``tqpinn.cli.main`` with ``sys.argv`` set); the first training
step is replaced by a sentinel exception, so a case either fails before training (exit 2, the
expected outcome) or reaches step 1 having built everything (a "start", which counts as a
failure for a broken config). A few real subprocesses check the same through ``python -m``.
"""

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tqpinn.cli import main
from tqpinn.quant.memory import saved_bytes
from tqpinn.train import trainer
from tqpinn.train.config import config_from_dict
from tqpinn.train.limits import memory_terms

BASE = {
    "seed": 1,
    "problem": {"name": "poisson", "options": {"dim": 2}},
    "model": {"widths": [8, 8], "activation": "tanh"},
    "estimator": {"name": "stein", "sigma": 0.05, "pairs": 4},
    "quant": "fp32",
    "train": {
        "steps": 2,
        "lr": 0.001,
        "schedule": "linear",
        "points": {"interior": 8, "boundary": 8},
        "weights": {"interior": 1.0, "boundary": 10.0},
        "log_every": 1,
        "eval_every": 2,
        "eval_points": 50,
        "checkpoint_every": 2,
        "on_nonfinite": "stop",
    },
}
POSITIVE_INTS = [
    "train.steps",
    "train.log_every",
    "train.eval_every",
    "train.eval_points",
    "train.checkpoint_every",
    "train.points.interior",
    "train.points.boundary",
    "estimator.pairs",
    "problem.options.dim",
    "model.widths.0",
    "train.nonfinite_patience",
]
POSITIVE_FLOATS = ["train.lr", "estimator.sigma"]
NON_NEGATIVE_FLOATS = ["train.weights.interior", "train.weights.boundary"]
CHOICES = [
    "model.activation",
    "train.schedule",
    "estimator.value",
    "estimator.diffquant",
    "train.on_nonfinite",
    "quant",
    "problem.name",
]
SIZES = {  # far beyond any machine: the memory preflight must refuse them by key
    "model.widths.0": "model.widths",
    "problem.options.dim": "problem.options.dim",
    "train.points.interior": "train.points.interior",
    "train.eval_points": "train.eval_points",
    "estimator.pairs": "estimator.pairs",
}
SECTIONS = ["", "problem", "model", "estimator", "train", "train.points"]


class Started(Exception):
    """The run reached its first training step."""


@dataclass
class Case:
    """A CLI invocation: argv after ``tqpinn train``, files to write first (name -> bytes),
    and the fragments one of which the error line must contain (None: starting is allowed
    too, for inputs that may still be valid, such as a truncated file)."""

    args: list[str]
    files: dict[str, bytes]
    fragments: list[str] | None
    kind: str = ""


def set_key(data: dict, dotted: str, value) -> dict:
    data = json.loads(json.dumps(data))
    node, parts = data, dotted.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return data


def leaf(dotted: str) -> str:
    return [p for p in dotted.split(".") if not p.isdigit()][-1]


def config_case(data: dict, fragments: list[str], via_set: str | None = None) -> Case:
    """The config as a YAML file, or the base file plus ``--set key=value`` for via_set."""
    if via_set is None:
        return Case(["--config", "c.yaml"], {"c.yaml": yaml.safe_dump(data).encode()}, fragments)
    node = data
    for part in via_set.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    files = {"c.yaml": yaml.safe_dump(BASE).encode()}
    return Case(["--config", "c.yaml", "--set", f"{via_set}={json.dumps(node)}"], files, fragments)


not_a_number = st.one_of(
    st.none(),
    st.booleans(),
    st.text(min_size=1).filter(lambda s: not _parses_as_number(s)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _parses_as_number(s: str) -> bool:
    try:
        float(s.strip().replace("_", ""))
    except ValueError:
        return False
    return True


@st.composite
def wrong_type(draw) -> Case:
    key = draw(st.sampled_from(POSITIVE_INTS + POSITIVE_FLOATS + NON_NEGATIVE_FLOATS))
    value = draw(not_a_number)
    if key == "train.eval_points" and value is None:
        value = "all"  # null is valid there: the problem's default test set
    via = draw(st.sampled_from([None, key])) if "." in key and value is not None else None
    return config_case(set_key(BASE, key, value), [key, f"'{leaf(key)}'"], via)


@st.composite
def not_positive(draw) -> Case:
    key = draw(st.sampled_from(POSITIVE_INTS + POSITIVE_FLOATS))
    value = draw(st.one_of(st.integers(max_value=0), st.floats(max_value=0, allow_nan=False)))
    return config_case(set_key(BASE, key, value), [key, f"'{leaf(key)}'"])


@st.composite
def negative_weight_or_nan(draw) -> Case:
    key = draw(st.sampled_from(NON_NEGATIVE_FLOATS + POSITIVE_FLOATS))
    value = draw(st.sampled_from([float("nan"), float("inf"), -1.0, -1e-300]))
    return config_case(set_key(BASE, key, value), [key])


@st.composite
def bad_choice(draw) -> Case:
    key = draw(st.sampled_from(CHOICES))
    value = draw(st.one_of(st.text(min_size=1), st.integers(), st.lists(st.integers())))
    if isinstance(value, str) and value in {"fp32", "smx_paper", "mx_int8", "poisson", "heat"}:
        value += "_x"
    fragments = [key, repr(value), str(value)] if key != "quant" else ["quant"]
    return config_case(set_key(BASE, key, value), fragments)


@st.composite
def absurd_size(draw) -> Case:
    key = draw(st.sampled_from(sorted(SIZES)))
    # ≥ 10^13 makes the memory bound exceed 10 TB whatever the key: refused on any machine.
    value = draw(st.integers(min_value=10**13, max_value=10**18))
    return config_case(set_key(BASE, key, value), [SIZES[key]])


@st.composite
def unknown_key(draw) -> Case:
    section = draw(st.sampled_from(SECTIONS))
    name = draw(st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1))
    known = {"", *BASE, *BASE["train"], *BASE["model"], *BASE["estimator"], *BASE["problem"]}
    known |= {"interior", "boundary", "tt", "directions_per_pass", "rollback_lr_factor"}
    name = name if name not in known else name + "_unknown"
    dotted = f"{section}.{name}" if section else name
    data = set_key(BASE, dotted, 1)
    if section == "train.points":  # points of a condition the problem does not have
        return config_case(data, [repr(name)])
    return config_case(data, [repr(dotted)])


@st.composite
def missing_file(draw) -> Case:
    name = draw(st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1))
    kind = draw(st.sampled_from(["config", "resume", "problem"]))
    if kind == "config":
        return Case(["--config", f"no_{name}.yaml"], {}, [f"no_{name}.yaml"])
    if kind == "resume":
        return Case(["--resume", f"no_{name}"], {}, [f"no_{name}"])
    data = set_key(BASE, "problem.name", f"missing_{name}.py:Problem")
    return config_case(data, [f"missing_{name}.py"])


no_colon = st.text(min_size=1).filter(lambda t: ":" not in t)  # the last ":" splits the name


@st.composite
def bad_problem_reference(draw) -> Case:
    """ "module:Object" / "file.py:Object" that name nothing importable or no Problem."""
    source = draw(
        st.one_of(
            st.sampled_from([".", "..", "a..b", "1a", "a b", "tqpinn.pdes", "x/", "x.py"]),
            no_colon.map(lambda t: f"no_such_{t}"),
        )
    )
    attribute = draw(st.one_of(st.just("Problem"), no_colon))
    name = f"{source}:{attribute}"
    return config_case(set_key(BASE, "problem.name", name), [source, repr(source)])


@st.composite
def bad_block(draw) -> Case:
    role = draw(st.sampled_from(["fwd.input", "fwd.weight", "dgrad.grad_output", "wgrad.input"]))
    block = draw(
        st.one_of(
            st.lists(st.integers(max_value=0), min_size=2, max_size=2),
            st.lists(st.integers(min_value=1, max_value=8), min_size=3, max_size=4),
            st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=1),
            st.text(min_size=1).filter(lambda s: s != "tensor"),
        )
    )
    bits = draw(st.one_of(st.just(8), st.integers(max_value=1), st.integers(min_value=17)))
    data = set_key(BASE, "quant", {"base": "smx_paper", role: {"bits": bits, "block": block}})
    return config_case(data, [f"quant.{role}"])


@st.composite
def tt_shape_that_does_not_fit(draw) -> Case:
    out_f = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=2, max_size=3))
    in_f = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=2, max_size=3))
    tt = {"layers": [1], "ranks": 2, "shapes": [[out_f, in_f]]}  # layer 1 is 8 -> 8
    if len(out_f) == len(in_f) and min(_prod(out_f), _prod(in_f)) >= 8:
        tt["shapes"] = [[out_f, in_f], [out_f, in_f]]  # one entry too many
    return config_case(set_key(BASE, "model.tt", tt), ["tt.shapes"])


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


@st.composite
def not_utf8(draw) -> Case:
    text = yaml.safe_dump(BASE).encode()
    at = draw(st.integers(min_value=0, max_value=len(text)))
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xfe\xfe"]))
    return Case(["--config", "c.yaml"], {"c.yaml": text[:at] + junk + text[at:]}, ["c.yaml"])


@st.composite
def damaged_yaml(draw) -> Case:
    """Truncated or scrambled text: it may still parse to a valid config (then it may start)."""
    text = yaml.safe_dump(BASE, default_flow_style=draw(st.booleans())).encode()
    how = draw(st.sampled_from(["truncate", "garbage"]))
    if how == "truncate":
        data = text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    else:
        data = draw(st.text(max_size=60)).encode()
    return Case(["--config", "c.yaml"], {"c.yaml": data}, None)


KINDS = {
    "wrong type": wrong_type(),
    "not positive": not_positive(),
    "NaN, Inf or negative weight": negative_weight_or_nan(),
    "bad choice": bad_choice(),
    "absurd size": absurd_size(),
    "unknown key": unknown_key(),
    "missing file": missing_file(),
    "bad problem reference": bad_problem_reference(),
    "block shape that does not fit": bad_block(),
    "TT shape that does not fit": tt_shape_that_does_not_fit(),
    "not UTF-8": not_utf8(),
    "truncated or scrambled YAML": damaged_yaml(),
}
CASES = st.one_of(
    *(
        cases.map(lambda c, kind=kind: Case(c.args, c.files, c.fragments, kind))
        for kind, cases in KINDS.items()
    )
)


def run_in_process(case: Case, where: Path) -> tuple[int | str, str]:
    """Exit code (or "started") and stderr of ``tqpinn train`` run in-process in ``where``."""
    for name, data in case.files.items():
        (where / name).write_bytes(data)
    args = case.args if "--resume" in case.args else [*case.args, "--out", "out", "--overwrite"]
    err = io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["tqpinn", "train", *args]),
        contextlib.chdir(where),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            main()
        except SystemExit as done:
            return done.code, err.getvalue()
        except Started:
            return "started", err.getvalue()
    return 0, err.getvalue()


def check(case: Case, outcome: int | str, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    if outcome == "started":
        assert case.fragments is None, f"a broken config started training: {case}"
        return
    assert outcome == 2, (outcome, stderr, case)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (stderr, case)
    if case.fragments is not None:
        assert any(f in lines[0] for f in case.fragments), (lines[0], case)


def refuse_training(run, step):
    raise Started


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,  # the same 600 cases every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=CASES)
def test_fuzzed_configs_fail_with_one_line_naming_the_key(case, workdir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models; spinning OpenMP threads only cost on a busy machine
    try:
        with mock.patch.object(trainer, "train_step", refuse_training):
            outcome, stderr = run_in_process(case, workdir)
    finally:
        torch.set_num_threads(threads)
    check(case, outcome, stderr)


def test_the_base_config_starts(workdir):
    case = config_case(BASE, None)
    with mock.patch.object(trainer, "train_step", refuse_training):
        assert run_in_process(case, workdir)[0] == "started"


@pytest.mark.parametrize(
    ("files", "args", "fragment"),
    [
        ({"c.yaml": b"seed: 1\n\xff\xfe\n"}, ["--config", "c.yaml"], "c.yaml is not UTF-8"),
        ({}, ["--set", "model.widths=[100000000000]"], "model.widths"),
    ],
)
def test_real_processes_exit_2_with_one_line(tmp_path, files, args, fragment):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "tqpinn", "train", *args, "--out", "out"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing started


BOUND_ESTIMATORS = {
    "autodiff": {"name": "autodiff"},
    "stein": {"name": "stein", "pairs": 8},
    "stein-smoothed": {"name": "stein", "pairs": 8, "value": "smoothed"},
    "stein-full": {"name": "stein", "pairs": 8, "diffquant": "full"},
}


@pytest.mark.parametrize("dim", [2, 12])  # 12 > directions_per_pass: two Laplacian passes
@pytest.mark.parametrize("quant", ["fp32", "smx_paper"])
@pytest.mark.parametrize("estimator", BOUND_ESTIMATORS.values(), ids=BOUND_ESTIMATORS.keys())
def test_memory_bound_is_below_what_a_step_keeps(estimator, quant, dim):
    # The preflight refuses runs by a lower bound; it is one only if every step really keeps
    # at least its per-step terms (activations, perturbations) for backward.
    data = {**BASE, "estimator": estimator, "quant": quant}
    data["problem"] = {"name": "poisson", "options": {"dim": dim}}
    data["model"] = {"widths": [16, 16]}
    config = config_from_dict(data)
    run = trainer.build_run(config)
    terms = {t.part: t.bytes for t in memory_terms(config)}
    kept = saved_bytes(lambda: trainer.train_step(run, 0), run.net).total
    assert terms["activations"] + terms["perturbations"] <= kept
    assert terms["model"] == 16 * run.n_params
