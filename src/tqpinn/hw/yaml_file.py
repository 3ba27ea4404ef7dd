"""Reading the user's YAML files of the hardware model (descriptions, timings, sweep specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tqpinn.errors import UserError


def read_yaml_file(path: Path, what: str) -> Any:
    """The content of the YAML (or JSON) file ``path``; a missing or unreadable file is a
    UserError naming ``what`` it should have been and the path."""
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise UserError(f"{what} {path} is not valid UTF-8 YAML") from None
