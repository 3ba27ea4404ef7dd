"""The ``tqpinn`` command line: thin wrappers, every command calls library functions."""

from __future__ import annotations

import sys

import typer

from tqpinn.cli.bench_quant import bench_quant_command
from tqpinn.cli.bench_tt import bench_tt_command
from tqpinn.cli.common import exit_on_user_error
from tqpinn.cli.hw import hw_command
from tqpinn.cli.problems import problems_command
from tqpinn.cli.reproduce import reproduce_command
from tqpinn.cli.train import eval_command, train_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
bench_app = typer.Typer(no_args_is_help=True, help="Measure speed and memory; write JSON.")
app.add_typer(bench_app, name="bench")

# Command registration: one line per command, each defined in its own module of this package.
app.command("train")(train_command)
app.command("eval")(eval_command)
app.command("problems")(problems_command)
bench_app.command("tt")(bench_tt_command)
bench_app.command("quant")(bench_quant_command)
app.command("hw")(hw_command)
app.command("reproduce")(reproduce_command)


def main() -> None:
    with exit_on_user_error():
        app()


if __name__ == "__main__":
    sys.exit(main())
