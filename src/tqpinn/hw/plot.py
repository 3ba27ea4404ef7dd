"""Stacked energy-breakdown plot of a PINTA report."""

from __future__ import annotations

from pathlib import Path

from tqpinn.hw.pinta import ENERGY_COMPONENTS, PHASE_GROUPS, PintaReport
from tqpinn.report.pyplot import pyplot


def plot_energy_breakdown(report: PintaReport, path: Path, title: str = "") -> None:
    """One bar per training phase (forward, backward, optimizer), stacked by component (µJ)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    bottom = [0.0] * len(PHASE_GROUPS)
    for component in ENERGY_COMPONENTS:
        heights = [report.energy_by_phase[p][component] * 1e-6 for p in PHASE_GROUPS]
        ax.bar(PHASE_GROUPS, heights, bottom=bottom, label=component)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("energy per step (µJ)")
    ax.set_title(title or f"{report.hardware}: energy per training step")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
