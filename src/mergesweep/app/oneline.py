"""How console scripts end on bad input, a full disk or Ctrl-C: one line on stderr and exit != 0.

Why: a user who mistyped a value, filled a disk or pressed Ctrl-C needs the reason, not 30-150 lines of
library frames. Bugs keep their traceback, and ``--debug`` or ``HYDRA_FULL_ERROR=1`` (Hydra's own switch)
shows the full one for everything.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from ..errors import USER_ERRORS, USER_OR_OS_ERRORS, PointFailed

T = TypeVar("T")
# OSErrors that are the machine's state, not a bug: full disk or quota, read-only or forbidden folder.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
INTERRUPTED = 130  # the shell's code for a SIGINT death
# What ends a console script in one line: bad input, the machine's state, and a point that failed a guard
# (NaN/Inf weights in a checkpoint, or a strength like 1e30: the input's fault, named, not a bug).
ONE_LINE: tuple[type[Exception], ...] = (*USER_ERRORS, PointFailed)
CAUGHT: tuple[type[Exception], ...] = (*USER_OR_OS_ERRORS, PointFailed)


def full_errors(debug: bool = False) -> bool:
    """Whether to show full tracebacks (``--debug`` or ``HYDRA_FULL_ERROR=1``)."""
    return debug or os.environ.get("HYDRA_FULL_ERROR") == "1"


def is_environment_error(e: BaseException) -> bool:
    """A full disk, a quota, a read-only or forbidden path."""
    return isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS


def message(e: BaseException) -> str:
    """The one line for ``e``: the error's own text; for an OSError, what failed and where."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def run(prog: str, fn: Callable[[], T], debug: bool = False, interrupted: str = "interrupted") -> T:
    """``fn()``; user errors, environment errors and Ctrl-C become ``<prog>: error: <one line>`` and exit != 0."""
    try:
        return fn()
    except KeyboardInterrupt:
        if full_errors(debug):
            raise
        sys.stderr.write(f"\n{prog}: {interrupted}\n")
        raise SystemExit(INTERRUPTED) from None
    except CAUGHT as e:
        if full_errors(debug) or not (isinstance(e, ONE_LINE) or is_environment_error(e)):
            raise
        raise SystemExit(f"{prog}: error: {message(e)}") from None
