"""The devices tqpinn runs on: checking a requested one, and waiting for queued work."""

from __future__ import annotations

import torch

from tqpinn.errors import UserError

DEVICES = ("cpu", "cuda")


def check_device(name: str) -> str:
    """``name`` if it names a device this machine can run: "cpu", or "cuda" (also "cuda:N")
    with a GPU; otherwise a UserError naming the choices."""
    try:
        kind = torch.device(name).type
    except (RuntimeError, TypeError):
        kind = None
    if kind not in DEVICES:
        raise UserError(f"--device must be 'cpu' or 'cuda', got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu")
    return name


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): call around timers."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
