"""``tqpinn problems``: list the registered problems, or describe one (user-defined included)."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml

from tqpinn.errors import UserError


def problems_command(
    name: Annotated[
        str | None,
        typer.Argument(help="A registered name or 'module:Object' / 'file.py:Object'."),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Problem option: key=value (YAML value).")
    ] = None,
) -> None:
    """List problems with dimension, conditions and defaults; with NAME, describe that one."""
    from tqpinn.pdes.describe import describe_problem, describe_registry

    options = dict(_parse_option(item) for item in set_ or [])
    if name is None and options:
        raise UserError("--set needs a problem NAME to apply to")
    typer.echo(describe_registry() if name is None else describe_problem(name, **options))


def _parse_option(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set dim=3")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError:
        raise UserError(f"--set {item!r}: the value is not valid YAML") from None
