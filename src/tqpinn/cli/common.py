"""What every CLI command shares: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqpinn.errors import RunError, UserError

# Every character str.splitlines() breaks at, shown escaped: a message quoting a user's key or
# value stays one line whatever that value holds.
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})


def _report(err: Exception, code: int) -> None:
    print(f"error: {str(err).translate(_LINE_BREAKS)}", file=sys.stderr)
    sys.exit(code)


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    try:
        yield
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        _report(err, 2)
    except RunError as err:
        _report(err, 1)
