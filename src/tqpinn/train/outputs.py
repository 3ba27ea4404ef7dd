"""What a training run writes, evaluates and shows: rank 0 all of it, every other rank nothing.

Rank 0's outputs are the contract of ``tqpinn train``: ``config.yaml``, ``metrics.jsonl``,
checkpoints, ``metrics.json`` and plots in the run directory, and the progress display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tqpinn.pdes.source import keep_problem_source
from tqpinn.train.checkpoint import (
    atomic_path,
    atomic_write_text,
    latest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from tqpinn.train.evaluate import evaluate, predict_test_set
from tqpinn.train.metrics import MetricsLog
from tqpinn.train.progress import Progress
from tqpinn.train.resume import checkpoint_state
from tqpinn.train.run import Run

ALWAYS_LOGGED = ("rel_l2", "nonfinite", "steps_before")
"""A step record holding any of these keys is logged whatever ``train.log_every`` says."""


class Outputs:
    """The outputs of a rank other than 0: it writes, evaluates and shows nothing."""

    def __init__(self) -> None:
        self.final: dict[str, float] = {}
        """The latest errors on the test set (empty where none were evaluated)."""

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def after_step(self, record: dict[str, Any], evaluate_now: bool, log_now: bool) -> None:
        """Evaluate into ``record`` (a step's log line) if due, and log it if due."""

    def checkpoint(self, step: int, wall_seconds: float) -> None:
        """Save the run's state after ``step`` steps."""

    def show(self, record: dict[str, Any]) -> None:
        """Show a step's progress."""

    def finish(self, summary: dict[str, Any]) -> None:
        """Write the run's summary and plots."""


class RunDirectory(Outputs):
    """Rank 0's outputs into ``out_dir``; opening it writes ``config.yaml`` and restarts the
    metrics log at ``start`` (a resumed run drops the lines its checkpoint had not reached)."""

    def __init__(
        self, run: Run, out_dir: Path, start: int, resume: bool, progress_bar: bool | None
    ) -> None:
        super().__init__()
        self.run, self.out_dir = run, out_dir
        keep_problem_source(run.config.problem.name, out_dir, resume)
        text = yaml.safe_dump(run.config.to_dict(), sort_keys=False)
        atomic_write_text(out_dir / "config.yaml", text)
        self.log = MetricsLog(out_dir / "metrics.jsonl", resume_step=start if resume else None)
        self.history = [r for r in MetricsLog.read(self.log.path) if "rel_l2" in r]
        steps = run.config.train.steps
        self.final = evaluate(run) if start == steps else {}
        self.progress = Progress(total=steps, start=start, bar=progress_bar)
        if self.history:  # a resumed run shows its last evaluation until the next one
            self.progress.remember_error(self.history[-1])

    def __enter__(self) -> RunDirectory:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def after_step(self, record: dict[str, Any], evaluate_now: bool, log_now: bool) -> None:
        if evaluate_now:
            self.final = evaluate(self.run)
            record.update(self.final)
            if self.final:
                self.history.append(record)
        if log_now or any(key in record for key in ALWAYS_LOGGED):
            self.log.write(record)

    def checkpoint(self, step: int, wall_seconds: float) -> None:
        save_checkpoint(self.out_dir, step, checkpoint_state(self.run, step, wall_seconds))

    def show(self, record: dict[str, Any]) -> None:
        self.progress.update(record)

    def finish(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
        write_plots(self.run, self.out_dir, self.history)
        newest = latest_checkpoint(self.out_dir)
        if newest is not None:
            prune_checkpoints(self.out_dir, keep=newest)


def open_outputs(
    run: Run, out_dir: Path, start: int, resume: bool, progress_bar: bool | None
) -> Outputs:
    """The one rank-0 decision of a run: rank 0 writes, evaluates and shows; others do not."""
    if run.shard.is_main:
        return RunDirectory(run, out_dir, start, resume, progress_bar)
    return Outputs()


def write_plots(run: Run, out_dir: Path, history: list[dict[str, Any]]) -> None:
    """Error vs step for every problem; solution and error maps for 2-D problems (each plot
    written atomically, like every other output)."""
    from tqpinn.report.plots import plot_error_history, plot_solution_2d

    if history:
        with atomic_path(out_dir / "error_vs_step.png") as path:
            plot_error_history(history, path, title=run.problem.name)
    if run.test_u is not None and run.problem.input_dim == 2:
        prediction = predict_test_set(run).cpu()
        with atomic_path(out_dir / "solution.png") as path:
            plot_solution_2d(
                run.test_x.cpu(), prediction, run.test_u.cpu(), path, title=run.problem.name
            )
