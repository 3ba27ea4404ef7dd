"""Error metrics against an exact solution, and the metrics.jsonl log."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tqpinn.errors import RunError, UserError
from tqpinn.train.checkpoint import atomic_write_text, write_all


def error_metrics(u_pred: torch.Tensor, u_exact: torch.Tensor) -> dict[str, float]:
    """rel_l2 = ‖e‖₂/‖u‖₂, rel_l1 = ‖e‖₁/‖u‖₁, max_abs_err = ‖e‖∞ with e = u_pred − u_exact."""
    pred, exact = u_pred.double().flatten(), u_exact.double().flatten()
    err = pred - exact
    return {
        "rel_l2": float(err.norm() / exact.norm()),
        "rel_l1": float(err.abs().sum() / exact.abs().sum()),
        "max_abs_err": float(err.abs().max()),
    }


class MetricsLog:
    """Append-only JSON-lines log; on resume, lines past the checkpoint's step are dropped
    (the shortened log replaces the old one atomically)."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        kept = []
        if resume_step is not None:
            kept = [r for r in self.read(path) if r["step"] <= resume_step]
        atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append one line; a failed append (disk full) is cut off again and is a RunError."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            write_all(fd, (json.dumps(record) + "\n").encode("utf-8"))
        except OSError as err:
            os.ftruncate(fd, end)
            raise RunError(f"cannot write {self.path}: {err.strerror or err}") from None
        finally:
            os.close(fd)

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """The records of a log; a line that is not one is a UserError naming it."""
        if not path.is_file():
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.endswith("\n"):  # the last write of a killed process may be cut short
            text = text[: text.rfind("\n") + 1]
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise UserError(f"{path} line {number} is not a metrics record: {line[:60]!r}")
            records.append(record)
        return records
