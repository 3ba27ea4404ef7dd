"""The convention every benchmark script follows: ``--out PATH`` (default under
benchmarks/results/), a library call, JSON that includes the machine info, a short summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tqpinn.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def parser(doc: str | None, default_out: str) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with ``--out``."""
    p = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=RESULTS / default_out, help="JSON file to write")
    return p


def write_result(out: Path, result: dict[str, Any], device: str = "cpu") -> None:
    """Write ``result`` to ``out`` as JSON, with this machine's description under "machine"
    unless the library call recorded one already."""
    result.setdefault("machine", machine_info(device))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
