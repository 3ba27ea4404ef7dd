"""User mistakes that used to pass silently or end in a traceback (issue 12, items 9-18, 20):
each one, through the CLI in-process, ends in one line, exit 2 for a user error or 1 for a run
that diverged, never a traceback and never exit 0 with a wrong result.

Training here is real (a few steps of a tiny model), so a mistake that the checks missed
would finish with exit 0 and fail its case.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from tqpinn.cli import main
from tqpinn.train import limits

PROBLEM = '''import torch

from tqpinn.pdes import LAP, U, Condition, Cube, CubeBoundary, Problem


class Square(Problem):
    """Poisson on the unit square with u = sin(x1 + x2)/2."""

    name = "square"
    dim = 2

    def conditions(self):
        return (
            Condition("interior", frozenset({LAP}), Cube(2), self.interior, 8, 1.0),
            Condition("boundary", frozenset({U}), CubeBoundary(2), self.boundary, 8, 10.0),
        )

    def exact(self, x):
        return torch.sin(x.sum(dim=1)) / 2

    def interior(self, x, f):
        return f.lap + torch.sin(x.sum(dim=1))

    def boundary(self, x, f):
        return f.u - self.exact(x)
'''
GOOD = {"    dim = 2\n": "    dim = 2\n"}
"""Replacements in PROBLEM that make one mistake each (GOOD: none)."""

TINY = {
    "seed": 1,
    "problem": {"name": "p.py:Square"},
    "model": {"widths": [8, 8]},
    "estimator": {"name": "stein", "sigma": 0.05, "pairs": 4},
    "train": {
        "steps": 12,
        "log_every": 1,
        "eval_every": 12,
        "checkpoint_every": 4,
        "eval_points": 64,
        "schedule": "constant",
    },
}


@dataclass
class Mistake:
    """A CLI call (after ``tqpinn``) with its files, the exit code and a fragment of the one
    error line it must give."""

    args: list[str]
    code: int
    fragment: str
    problem: dict[str, str] = field(default_factory=lambda: GOOD)
    config: dict | str = field(default_factory=lambda: TINY)


def config_with(**sections) -> dict:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    for dotted, value in sections.items():
        node, *path, last = dotted.split("__")
        target = data[node]
        for part in path:
            target = target[part]
        target[last] = value
    return data


TRAIN = ["train", "--config", "c.yaml", "--out", "run"]
MISTAKES = {
    # 9: divergence
    "lr=10: finite garbage": Mistake(
        TRAIN, 1, "exploding loss", config=config_with(train__lr=10.0)
    ),
    "lr=1e25 with rollback": Mistake(
        TRAIN,
        1,
        "rollbacks already = train.max_rollbacks",
        config=config_with(train__lr=1e25, train__on_nonfinite="rollback", train__steps=60),
    ),
    # 10: booleans other than diffquant's false are not read as choices
    "diffquant: on": Mistake(
        TRAIN, 2, "estimator.diffquant", config=config_with(estimator__diffquant=True)
    ),
    "schedule: off": Mistake(TRAIN, 2, "train.schedule", config=config_with(train__schedule=False)),
    # 11: shapes and values of residuals, samplers, exact
    "residual broadcast to (n, n)": Mistake(
        TRAIN,
        2,
        "the residual of condition 'boundary' returned torch.float32 of shape (5, 5)",
        {"f.u - self.exact(x)\n": "f.u - self.exact(x)[:, None]\n"},
    ),
    "sampler of the wrong dimension": Mistake(
        TRAIN,
        2,
        "sampler of condition 'interior' returned torch.float32 of shape (5, 3)",
        {"Cube(2)": "Cube(3)"},
    ),
    "NaN residual at the first step": Mistake(
        TRAIN,
        2,
        "non-finite loss at step 1, before any update",
        {"f.lap + torch": "f.lap + torch.log(-x[:, 0] - 1) + torch"},
    ),
    # 12: fields and attributes
    "residual reads an unrequested field": Mistake(
        TRAIN,
        2,
        "the residual of condition 'interior' reads field 'u', which is not in its needs ['lap']",
        {"return f.lap +": "return f.u + f.lap +"},
    ),
    "no dim (train)": Mistake(TRAIN, 2, "has no attribute 'dim'", {"    dim = 2\n": ""}),
    "no dim (problems)": Mistake(
        ["problems", "p.py:Square"], 2, "has no attribute 'dim'", {"    dim = 2\n": ""}
    ),
    # 13: exact (n, 1)
    "exact of shape (n, 1)": Mistake(
        TRAIN,
        2,
        "exact() returned torch.float32 of shape (5, 1)",
        {"return torch.sin(x.sum(dim=1)) / 2": "return (torch.sin(x.sum(dim=1)) / 2)[:, None]"},
    ),
    # 14: broken problem files
    "syntax error": Mistake(
        TRAIN, 2, "p.py:25: SyntaxError", {"return f.u - self.exact(x)": "return f.u -"}
    ),
    "exception in __init__": Mistake(
        TRAIN,
        2,
        "p.py:13: ZeroDivisionError: division by zero",
        {"    dim = 2\n": "    dim = 2\n\n    def __init__(self):\n        self.scale = 1 / 0\n"},
    ),
    "missing import": Mistake(
        TRAIN,
        2,
        "p.py:1: ModuleNotFoundError: No module named 'no_such_module_xyz'",
        {"import torch\n": "import no_such_module_xyz\n"},
    ),
    # 16: empty model and empty file
    "widths: []": Mistake(TRAIN, 2, "model.widths", config=config_with(model__widths=[])),
    "empty config file": Mistake(TRAIN, 2, "c.yaml holds no keys", config="# nothing yet\n"),
    # 17: PRS that is the sequential plan
    "partial with groups = cores": Mistake(
        TRAIN,
        2,
        "factors out [4, 2] x in [2, 4]) into 2 groups of one core, which is the sequential plan",
        config=config_with(model__tt={"layers": [1], "plan": "partial", "groups": 2}),
    ),
    # 20: a typo in the object name
    "typo in the class name": Mistake(["problems", "p.py:Squar"], 2, "did you mean 'Square'?"),
}


def run_cli(args: list[str], where: Path) -> tuple[int, str]:
    """Exit code and stderr of ``tqpinn ARGS`` run in-process in ``where``."""
    err = io.StringIO()
    with (
        mock.patch.object(sys, "argv", ["tqpinn", *args]),
        contextlib.chdir(where),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            main()
        except SystemExit as done:
            return int(done.code or 0), err.getvalue()
    return 0, err.getvalue()


def write_case(where: Path, problem: dict[str, str], config: dict | str) -> None:
    source = PROBLEM
    for old, new in problem.items():
        assert old in source, old
        source = source.replace(old, new)
    (where / "p.py").write_text(source)
    (where / "c.yaml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))


def assert_one_line(code: int, stderr: str, expected: int, fragment: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert code == expected and len(lines) == 1 and lines[0].startswith("error: "), (code, stderr)
    assert fragment in lines[0], lines[0]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: spinning OpenMP threads only cost on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_each_mistake_is_one_line_and_a_nonzero_exit(mistake, tmp_path):
    write_case(tmp_path, mistake.problem, mistake.config)
    code, stderr = run_cli(mistake.args, tmp_path)
    assert_one_line(code, stderr, mistake.code, mistake.fragment)


def test_the_unbroken_problem_trains(tmp_path):
    # The cases above differ from this one by their mistake only.
    write_case(tmp_path, GOOD, TINY)
    assert run_cli(TRAIN, tmp_path) == (0, "")


def test_diffquant_off_as_the_docs_write_it_trains(tmp_path):
    write_case(tmp_path, GOOD, yaml.safe_dump(TINY) + "")
    text = (tmp_path / "c.yaml").read_text().replace("pairs: 4", "pairs: 4\n  diffquant: off")
    (tmp_path / "c.yaml").write_text(text)
    assert "diffquant: off" in text
    assert run_cli(TRAIN, tmp_path)[0] == 0
    assert (
        yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["estimator"]["diffquant"]
        == "off"
    )


def test_the_memory_check_sees_the_process_limit(tmp_path, monkeypatch):
    # 18: a cgroup (or ulimit -v) limit below the run's bound refuses it, whatever the RAM.
    write_case(tmp_path, GOOD, TINY)
    monkeypatch.setattr(limits, "cgroup_limit", lambda: 2**10)
    code, stderr = run_cli(TRAIN, tmp_path)
    assert_one_line(code, stderr, 2, "device has 9.54e-07 GiB")


def test_a_run_directory_works_from_anywhere_and_notices_a_changed_problem(tmp_path):
    # 15: the config keeps the problem file's absolute path and the run a copy of it.
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    write_case(work, GOOD, config_with(train__steps=4))
    assert run_cli(TRAIN, work)[0] == 0
    run = work / "run"
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["problem"]["name"]
        == f"{work / 'p.py'}:Square"
    )
    assert (run / "problem_source.py").read_bytes() == (work / "p.py").read_bytes()
    assert run_cli(["eval", str(run)], elsewhere) == (0, "")
    (work / "p.py").write_text(PROBLEM.replace("10.0", "20.0"))
    for args in (["eval", str(run)], ["train", "--resume", str(run)]):
        code, stderr = run_cli(args, elsewhere)
        assert_one_line(code, stderr, 2, f"problem file {work / 'p.py'} changed since the run")
    (work / "p.py").unlink()
    code, stderr = run_cli(["eval", str(run)], elsewhere)
    assert_one_line(code, stderr, 2, "is missing; restore it from the run's copy")
