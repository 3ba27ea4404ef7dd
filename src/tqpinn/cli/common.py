"""What every CLI command shares: user errors become one line on stderr and exit code 2, runtime
failures one line and exit code 1, Ctrl-C one line and exit code 130 (128 + SIGINT)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import TracebackType

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
    try:
        yield
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        _report(err, 2)
    except (RunError, OSError) as err:  # OSError: the machine (disk full, I/O error), not input
        _report(err, 1)
    except KeyboardInterrupt:
        exit_interrupted("stopped before the command started its work")


def _interrupt_in_one_line(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """Ctrl-C while the commands are imported (seconds: torch) is one line, not a traceback."""
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted: stopped while starting", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(INTERRUPTED)  # sys.exit cannot be raised from an excepthook
    _previous_hook(kind, value, tb)


_previous_hook = sys.excepthook
sys.excepthook = _interrupt_in_one_line
