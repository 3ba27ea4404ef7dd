"""Building problems by name: registered names, user references, and clear user errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tqpinn.errors import UserError
from tqpinn.pdes import HJB, PROBLEMS, Heat, Poisson, Problem, get_problem
from tqpinn.pdes.check import check_problem
from tqpinn.train.config import load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "allen_cahn.py"


def test_registry_holds_the_three_benchmarks_with_default_dims() -> None:
    assert {"poisson": Poisson, "heat": Heat, "hjb": HJB} == PROBLEMS
    dims = {name: get_problem(name).dim for name in PROBLEMS}
    assert dims == {"poisson": 2, "heat": 100, "hjb": 20}
    assert get_problem("hjb").hard_constraint is True
    assert get_problem("poisson", dim=7).input_dim == 7
    assert get_problem("heat", dim=7).input_dim == 8


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UserError, match=r"unknown problem 'poison'.*'heat', 'hjb', 'poisson'"):
        get_problem("poison")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(UserError, match=r"problem 'hjb'.*'dims'.*dim=20, hard_constraint=True"):
        get_problem("hjb", dims=3)


@pytest.mark.parametrize("dim", [0, -3, 2.5, "3", True, None])
def test_bad_dim_is_a_user_error(dim: object) -> None:
    with pytest.raises(UserError, match=r"problem 'heat': option 'dim' must be an integer >= 1"):
        get_problem("heat", dim=dim)


def test_bad_hard_constraint_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"option 'hard_constraint' must be true or false"):
        get_problem("hjb", hard_constraint="yes")


def test_file_reference_loads_the_example() -> None:
    problem = get_problem(f"{EXAMPLE}:AllenCahn", dim=3)
    assert isinstance(problem, Problem)
    assert (problem.name, problem.dim, problem.input_dim) == ("allen_cahn", 3, 4)


def test_relative_file_reference_is_relative_to_working_dir(monkeypatch) -> None:
    monkeypatch.chdir(EXAMPLE.parents[1])
    assert get_problem("examples/allen_cahn.py:AllenCahn").dim == 2


def test_module_reference_and_factory(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_pdes.py").write_text(
        "from tqpinn.pdes import Poisson\n"
        "def poisson3(scale=1):\n"
        "    return Poisson(dim=3 * scale)\n"
        "NOT_A_PROBLEM = 3\n"
        "def not_a_problem():\n"
        "    return 'x'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_problem("my_pdes:poisson3").dim == 3
    assert get_problem("my_pdes:poisson3", scale=2).dim == 6
    assert get_problem("tqpinn.pdes.heat:Heat", dim=4).dim == 4
    with pytest.raises(UserError, match=r"'my_pdes:NOT_A_PROBLEM' is a int; expected a Problem"):
        get_problem("my_pdes:NOT_A_PROBLEM")
    with pytest.raises(UserError, match=r"returned a str, not a tqpinn.pdes.Problem"):
        get_problem("my_pdes:not_a_problem")
    # Only what can name a problem is listed (not the constant), the closest name suggested.
    with pytest.raises(
        UserError,
        match=r"'my_pdes' defines no 'poisson'; did you mean 'poisson3'\? \(its Problem "
        r"subclasses and functions: \['Poisson', 'not_a_problem', 'poisson3'\]\)",
    ):
        get_problem("my_pdes:poisson")
    with pytest.raises(UserError, match=r"bad options .*'size'.*valid: scale=1"):
        get_problem("my_pdes:poisson3", size=2)


def test_missing_module_and_file_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no module named 'no_such_module_xyz'"):
        get_problem("no_such_module_xyz:Thing")
    with pytest.raises(UserError, match=r"problem file 'nowhere/pde.py' not found"):
        get_problem("nowhere/pde.py:Thing")
    with pytest.raises(UserError, match=r"expected 'pkg.module:Object'"):
        get_problem("my_pdes:")


def test_a_broken_dependency_inside_user_code_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import math\nimport no_such_dependency_xyz\n")
    with pytest.raises(
        UserError,
        match=rf"problem file '{path}' failed to import: {path}:2: ModuleNotFoundError: "
        "No module named 'no_such_dependency_xyz'",
    ):
        get_problem(f"{path}:Thing")


def test_example_config_builds_the_example_problem(monkeypatch) -> None:
    monkeypatch.chdir(EXAMPLE.parents[1])
    config = load_config(EXAMPLE.with_suffix(".yaml"))
    problem = get_problem(config.problem.name, **config.problem.options)
    assert (problem.name, problem.dim, problem.epsilon) == ("allen_cahn", 2, 0.1)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_the_interface_check_accepts_every_registered_problem(name) -> None:
    # User problems are checked when built; the registered ones must pass the same check.
    check_problem(get_problem(name), name)
