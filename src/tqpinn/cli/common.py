"""What every CLI command shares: user errors become one line on stderr and exit code 2, runtime
failures one line and exit code 1, Ctrl-C one line and exit code 130 (128 + SIGINT)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from tqpinn.errors import RunError, UserError

INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C, as a shell reports a process ended by SIGINT."""

# Every character str.splitlines() breaks at, shown escaped: a message quoting a user's key or
# value stays one line whatever that value holds.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def _report(err: Exception, code: int) -> None:
    print(f"error: {str(err).translate(_LINE_BREAKS)}", file=sys.stderr)
    sys.exit(code)


def exit_interrupted(message: str) -> None:
    """End a command stopped by Ctrl-C: ``message`` in one line, exit code 130."""
    print(f"interrupted: {message.translate(_LINE_BREAKS)}", file=sys.stderr, flush=True)
    sys.exit(INTERRUPTED)


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    _end_of_start_up()
    try:
        yield
    except (
        UserError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
    ) as err:
        _report(err, 2)
    except (RunError, OSError) as err:  # OSError: the machine (disk full, I/O error), not input
        _report(err, 1)
    except KeyboardInterrupt:
        exit_interrupted("stopped before the command started its work")


def _defer_interrupt(signum: int, frame: FrameType | None) -> None:
    global _interrupted_while_starting
    _interrupted_while_starting = True


def _end_of_start_up() -> None:
    """Ctrl-C raises KeyboardInterrupt again; one pressed while starting ends the command."""
    if signal.getsignal(signal.SIGINT) is _defer_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _interrupted_while_starting:
        exit_interrupted("stopped while starting")


# Importing the commands imports torch (seconds), and a KeyboardInterrupt raised inside its
# extension modules can abort the process or be swallowed. So the tqpinn program (not a
# process that merely imports this package) defers Ctrl-C until the command starts.
_interrupted_while_starting = False
_program = (
    Path(sys.argv[0]).name == "tqpinn"
    or Path(sys.argv[0]) == Path(__file__).parents[1] / "__main__.py"
)
if _program and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _defer_interrupt)
