"""Run the command line in a child process, as a user would: `python -m tqpinn ARGS`."""

import os
import subprocess
import sys
from pathlib import Path


def run_tqpinn(
    *args: str, cwd: Path | None = None, timeout: float = 600, one_thread: bool = False
) -> subprocess.CompletedProcess:
    """The finished process with its stdout and stderr as text; ``one_thread`` sets
    OMP_NUM_THREADS=1 in its environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if one_thread else None
    return subprocess.run(
        [sys.executable, "-m", "tqpinn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )
