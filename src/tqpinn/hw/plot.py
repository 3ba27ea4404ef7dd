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


def plot_pareto(
    path: Path,
    title: str,
    panels: dict[str, dict[str, list[float] | list[int] | tuple[float, float]]],
    targets: tuple[float, float],
) -> None:
    """One panel per baseline: energy saving against speedup of every design point, coloured by
    area (mm²), the Pareto front joined, the default design starred, the targets dashed.

    panels: baseline -> {"speedup", "saving", "area", "front" (indices), "default" (s, e)}.
    """
    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), dpi=110, squeeze=False)
    for ax, (name, panel) in zip(axes[0], panels.items(), strict=True):
        sc = ax.scatter(
            panel["speedup"], panel["saving"], c=panel["area"], s=6, cmap="viridis", norm="log"
        )
        front = panel["front"]
        ax.plot(
            [panel["speedup"][i] for i in front], [panel["saving"][i] for i in front], "r-", lw=1
        )
        ax.plot(*panel["default"], "k*", ms=10, label="default design")
        ax.axvline(targets[0], color="grey", ls="--", lw=0.8)
        ax.axhline(targets[1], color="grey", ls="--", lw=0.8, label="paper's lowest figures")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("speedup")
        ax.set_ylabel("energy saving")
        ax.set_title(name, fontsize=9)
        ax.grid(True, which="both", alpha=0.2)
        fig.colorbar(sc, ax=ax, label="area proxy (mm²)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
