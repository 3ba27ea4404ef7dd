"""PNG plots of a run (matplotlib through :func:`tqpinn.report.pyplot.pyplot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tqpinn.report.pyplot import pyplot


def plot_error_history(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Relative L2 (and L1) error against training step, log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    steps = [r["step"] for r in records]
    ax.semilogy(steps, [r["rel_l2"] for r in records], marker="o", ms=3, label="rel. L2")
    ax.semilogy(steps, [r["rel_l1"] for r in records], marker="s", ms=3, label="rel. L1")
    ax.set_xlabel("step")
    ax.set_ylabel("error vs exact solution")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_solution_2d(
    x: torch.Tensor, u_pred: torch.Tensor, u_exact: torch.Tensor, path: Path, title: str = ""
) -> None:
    """Prediction, exact solution and absolute error over a 2-D domain (x (N, 2))."""
    plt = pyplot()
    xs, ys = x[:, 0].numpy(), x[:, 1].numpy()
    panels = [
        ("prediction", u_pred.numpy()),
        ("exact", u_exact.numpy()),
        ("|error|", (u_pred - u_exact).abs().numpy()),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=110)
    for ax, (name, values) in zip(axes, panels, strict=True):
        mesh = ax.tricontourf(xs, ys, values, levels=50, cmap="viridis")
        fig.colorbar(mesh, ax=ax)
        ax.set_title(name)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
