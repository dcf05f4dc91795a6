"""The exit statuses of ``auc_server`` (and ``auc_server history``), and what
each means.

One IntEnum both commands return, so that the numbers, the ``--help`` epilog
and README.md's table (checked by a test) come from one place. The client's
statuses are ``session.ExitStatus``.
"""

from __future__ import annotations

import enum


class ServerExit(enum.IntEnum):
    """The server's exit statuses; ``SERVER_EXIT_TEXT`` says what each means."""

    OK = 0  #: stopped by SIGINT/SIGTERM (history: listed)
    USAGE = 2  #: bad command line (argparse)
    LEDGER = 3  #: the ledger cannot be used
    LISTEN = 4  #: the port cannot be opened
    INTERNAL = 70  #: an internal error; every client was told CANCELLED
    INTERRUPTED = 130  #: Ctrl-C before the signal handlers were installed


#: Exit status -> its meaning, for ``auc_server --help`` and README.md.
SERVER_EXIT_TEXT: dict[ServerExit, str] = {
    ServerExit.OK: "stopped by SIGINT or SIGTERM (every client is told CANCELLED shutdown)",
    ServerExit.USAGE: "usage error",
    ServerExit.LEDGER: "the ledger cannot be used",
    ServerExit.LISTEN: "the port cannot be opened",
    ServerExit.INTERNAL: "internal error (every client is told CANCELLED server-error)",
    ServerExit.INTERRUPTED: "interrupted by Ctrl-C while starting",
}

