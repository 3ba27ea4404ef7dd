"""Error metrics against an exact solution, and the metrics.jsonl log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


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
    """Append-only JSON-lines log; on resume, lines past the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is None:
            path.write_text("")
        else:
            kept = [line for line in self.read(path) if line["step"] <= resume_step]
            path.write_text("".join(json.dumps(line) + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        if not path.is_file():
            return []
        text = path.read_text()
        if not text.endswith("\n"):  # the last write of a killed process may be cut short
            text = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
