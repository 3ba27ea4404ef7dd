"""A checksum of a checkpoint's contents: SHA-256 over every key, value and tensor byte.

The digest is taken over the loaded structure, not the file's bytes, so that it can be stored
inside the file it checks; a flipped bit in any tensor, number or string changes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

_SCALARS = (bool, int, float, str, bytes, type(None))


def state_digest(state: Any) -> str:
    """``"sha256:<hex>"`` of a nested structure of dicts, lists, tuples, tensors and scalars.

    Dict keys are hashed in sorted order (of their repr), so the order of a dict does not count;
    lists and tuples hash alike (a checkpoint may load one as the other). Anything else is a
    TypeError: its repr could hold a memory address, and the digest must be reproducible.
    """
    sha = hashlib.sha256()
    _feed(sha, state)
    return f"sha256:{sha.hexdigest()}"


def _feed(sha: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        sha.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
        sha.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        sha.update(f"dict {len(value)};".encode())
        for key in sorted(value, key=repr):
            _feed(sha, key)
            _feed(sha, value[key])
    elif isinstance(value, list | tuple):
        sha.update(f"seq {len(value)};".encode())
        for item in value:
            _feed(sha, item)
    elif isinstance(value, _SCALARS):
        sha.update(f"{type(value).__name__} {value!r};".encode())
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__} in a checkpoint")
