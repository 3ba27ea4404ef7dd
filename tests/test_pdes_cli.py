"""``tqpinn problems``: lists every registered problem; bad input is one line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tqpinn.cli import app, main
from tqpinn.pdes import PROBLEMS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "allen_cahn.py"


def test_lists_every_registered_problem_with_dim_conditions_defaults() -> None:
    result = CliRunner().invoke(app, ["problems"])
    assert result.exit_code == 0, result.output
    for name in PROBLEMS:
        assert f"\n{name}: " in "\n" + result.output
    assert "options: dim=100" in result.output
    assert "input: 21 columns (x_1..x_20, t)" in result.output
    assert "boundary   needs u                100 pts  w=300" in result.output
    assert "sphere ‖x‖ = 1 in R^100 × t ∈ [0, 1]" in result.output


def test_describes_one_problem_with_options() -> None:
    result = CliRunner().invoke(app, ["problems", "hjb", "--set", "hard_constraint=false"])
    assert result.exit_code == 0, result.output
    assert "hard_constraint=False" in result.output
    assert "terminal   needs u" in result.output
    assert "poisson" not in result.output


def test_describes_a_user_problem() -> None:
    result = CliRunner().invoke(app, ["problems", f"{EXAMPLE}:AllenCahn", "--set", "dim=3"])
    assert result.exit_code == 0, result.output
    assert "options: dim=3, epsilon=0.1" in result.output
    assert "input: 4 columns (x_1..x_3, t)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["problems", "poison"],
            "unknown problem 'poison'; choose from ['heat', 'hjb', 'poisson']",
        ),
        (["problems", "heat", "--set", "dim=0"], "option 'dim' must be an integer >= 1, got 0"),
        (["problems", "heat", "--set", "dim"], "--set 'dim': expected key=value"),
        (["problems", "--set", "dim=3"], "--set needs a problem NAME"),
    ],
)
def test_user_errors_exit_2_with_one_line(monkeypatch, capsys, args, message) -> None:
    monkeypatch.setattr(sys, "argv", ["tqpinn", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
