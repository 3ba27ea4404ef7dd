"""What every CLI command shares: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqpinn.errors import RunError, UserError


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    try:
        yield
    except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
