"""matplotlib, imported on first use with the Agg backend: plots are files, no display needed,
and importing tqpinn stays free of matplotlib's start-up cost."""

from __future__ import annotations

from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
