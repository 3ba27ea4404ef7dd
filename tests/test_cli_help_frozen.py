"""The command line is a contract: the ``--help`` of every command is frozen in
tests/golden/cli_help.json (commands, options, defaults and help text).

The text is compared after removing the frame characters of the help renderer and collapsing
whitespace, so a different terminal width or re-wrapping does not count as a change, while any
option, default or word does. A deliberate change of the CLI rewrites the file:
``python tests/test_cli_help_frozen.py --update``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from tqpinn.cli import app

GOLDEN = Path(__file__).with_name("golden") / "cli_help.json"
COMMANDS = (
    (),
    ("train",),
    ("eval",),
    ("problems",),
    ("hw",),
    ("reproduce",),
    ("bench",),
    ("bench", "quant"),
    ("bench", "tt"),
)
FRAME = re.compile(r"[│╭╮╰╯─┃┏┓┗┛━]+")


def help_text(command: tuple[str, ...]) -> str:
    """The normalised ``--help`` of ``tqpinn COMMAND``."""
    result = CliRunner().invoke(
        app,
        [*command, "--help"],
        prog_name="tqpinn",
        env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"},
    )
    assert result.exit_code == 0, result.output
    return " ".join(FRAME.sub(" ", result.output).split())


def current() -> dict[str, str]:
    return {" ".join(("tqpinn", *c)): help_text(c) for c in COMMANDS}


def test_every_command_help_is_frozen():
    want, got = json.loads(GOLDEN.read_text()), current()
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"`{name} --help` changed"


def test_the_frozen_help_lists_every_command_and_the_train_options():
    frozen = json.loads(GOLDEN.read_text())
    for command in ("train", "eval", "problems", "hw", "reproduce", "bench"):
        assert command in frozen["tqpinn"]
    for option in ("--config", "--out", "--set", "--resume", "--device"):
        assert option in frozen["tqpinn train"]


if __name__ == "__main__" and "--update" in sys.argv:
    GOLDEN.write_text(json.dumps(current(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
