"""Standard output for the commands that print to it: what to do when the
reader has gone away."""

from __future__ import annotations

import os
import sys


def discard_stdout() -> None:
    """Point standard output at /dev/null, so that what is still buffered
    (and Python's flush at exit, which would otherwise fail and set exit
    status 120) goes nowhere instead of to a broken pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
