"""Progress of a training run: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

PLAIN_LINES = 10  # log lines over a run when not on a terminal


class Progress:
    def __init__(self, total: int, start: int = 0, bar: bool | None = None) -> None:
        """``bar``: a rich progress bar (True), plain lines (False), or by whether stdout is a TTY."""
        self.total, self.start = total, start
        self.tty = sys.stdout.isatty() if bar is None else bar
        self.every = max(1, total // PLAIN_LINES)
        self.last_error = ""
        self.t0 = time.perf_counter()
        self._bar: RichProgress | None = None

    def __enter__(self) -> Progress:
        if self.tty:
            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "train", total=self.total, completed=self.start, status=""
            )
        return self

    def remember_error(self, record: dict[str, Any]) -> None:
        """Show the error of ``record`` (an evaluated step's record) with its step from now on."""
        self.last_error = f" rel_l2 {record['rel_l2']:.3e} @ step {record['step']}"

    def update(self, record: dict[str, Any]) -> None:
        if "rel_l2" in record:
            self.remember_error(record)
        status = f"loss {record['loss']:.3e}{self.last_error}"
        step = record["step"]
        if self._bar is not None:
            self._bar.update(self._task, completed=step, status=status)
        elif step % self.every == 0 or step == self.total:
            elapsed = time.perf_counter() - self.t0
            print(f"step {step}/{self.total} {status} ({elapsed:.1f} s)", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
