"""What every baseline server shares: the command line, the console, and the
shell that drives the project's own sans-IO auction machine.

For an honest comparison the baselines differ from ``auc_server`` only in how
bytes move: the auction rules (``reactor_auction.auction.Auction``), the number
rule and request grammar (``protocol``), the console wording (``text`` via
``server.ConsoleLog``) and the limits (1024-byte lines, backlog 4096, 64 KiB of
unread output, 2 s linger after a final line) are the project's own.

The baselines keep no ledger: ``--ledger PATH`` and ``--no-ledger`` are
accepted and ignored, and a result is released as soon as it is decided (which
is what ``auc_server --no-ledger`` does too).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from reactor_auction.actions import carry_out
from reactor_auction.auction import Auction
from reactor_auction.events import (
    Action,
    AuctionRecord,
    Close,
    Departed,
    Event,
    Log,
    LogKind,
    Record,
    Recorded,
    Send,
    Shutdown,
    Tick,
)
from reactor_auction.server import ConsoleLog, build_parser, max_buyers_allowed
from reactor_auction.service import MAX_OUTPUT, SHUTDOWN_GRACE
from reactor_auction.transport import LINGER_BYTES, LINGER_SECONDS

__all__ = [
    "BACKLOG", "LINGER_BYTES", "LINGER_SECONDS", "MAX_OUTPUT", "SHUTDOWN_GRACE",
    "Link", "Options", "Shell", "coalesce", "parse_options", "strip_terminator",
]

#: The listen backlog, as auc_server's (service.AuctionService.listen).
BACKLOG = 4096

NO_LEDGER_NOTE = (
    "This benchmark baseline keeps no ledger: --ledger PATH and --no-ledger are "
    "accepted and ignored, and results are released at once. --poll-us is "
    "accepted and ignored too: its event loop always sleeps at once."
)


class Options:
    """The parsed command line of a baseline server."""

    def __init__(self, args: argparse.Namespace, max_buyers: int, log: ConsoleLog) -> None:
        self.host: str = args.host
        self.port: int = args.port
        self.request_timeout: float = args.request_timeout
        self.bid_timeout: float = args.bid_timeout
        self.max_output: int = args.max_output
        self.max_buyers = max_buyers  #: capped by the descriptor limit, as auc_server does
        self.log = log

    def auction(self) -> Auction:
        """Return a fresh auction machine with these options."""
        return Auction(
            max_buyers=self.max_buyers,
            request_timeout=self.request_timeout,
            bid_timeout=self.bid_timeout,
        )

    def listening(self, port: int) -> None:
        """Say so, as auc_server does: the port (--verbose only), then ready."""
        self.log(LogKind.LISTENING, (self.host or "*", port))
        self.log(LogKind.READY, ())


def parse_options(prog: str, what: str, argv: Sequence[str] | None = None) -> Options:
    """Return the options of a baseline: exactly auc_server's command line.

    Raises SystemExit(2) on a usage error, as argparse does.
    """
    parser = build_parser()
    parser.prog = prog
    parser.description = f"Benchmark baseline: the auction server on {what}. {NO_LEDGER_NOTE}"
    parser.epilog = (
        "Exit status: 0 stopped by SIGINT/SIGTERM; 2 usage error; 4 port cannot be opened."
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    log = ConsoleLog(quiet=args.quiet, verbose=args.verbose)
    return Options(args, max_buyers_allowed(args.max_buyers, log), log)


def strip_terminator(line: bytes) -> bytes:
    """Return a line read with its ``\\n`` (and one ``\\r`` before it) removed,
    as framing.LineBuffer returns it."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1]


def coalesce(actions: Sequence[Action]) -> list[Action]:
    """Return ``actions`` with each connection's Sends merged into one.

    A connection's merged Send stands where its first Send stood; a Close
    ends the run (bytes after it would be dropped anyway) and a Record is a
    barrier (nothing moves across it), so what reaches each connection, and
    when relative to the ledger, is unchanged. For a shell that writes at
    once, one Send per connection means one system call: ROLE and WAITING,
    INVALID and the prompt again, ACCEPTED and a result each travel together.
    (The project's own reactor needs no help here: a Stream sends whatever
    one turn of the loop wrote to it in one call.)
    """
    merged: list[Action] = []
    open_send: dict[int, int] = {}  # conn -> index of its Send in merged
    for action in actions:
        if isinstance(action, Send):
            index = open_send.get(action.conn)
            if index is None:
                open_send[action.conn] = len(merged)
                merged.append(action)
            else:
                first = merged[index]
                assert isinstance(first, Send)
                merged[index] = Send(action.conn, first.data + action.data)
            continue
        if isinstance(action, Close):
            open_send.pop(action.conn, None)
        elif isinstance(action, Record):
            open_send.clear()
        merged.append(action)
    return merged


class Link(Protocol):
    """One client connection as the shell sees it."""

    #: True once the machine has closed it (after its Close action): from
    #: then on its input is discarded and no event about it is fed.
    detached: bool

    def send(self, data: bytes) -> None:
        """Queue ``data``; a failure becomes a departure later, never here."""

    def finish(self) -> None:
        """Flush, send FIN, linger briefly for the peer's, then close."""


class Shell:
    """Feeds events to one Auction and carries out its actions (it is their
    ``actions.Executor``).

    The same job as service.AuctionService, minus the ledger: a ``Record``
    action is answered with ``Recorded`` at once. The caller serialises calls
    (one event loop, or a lock).
    """

    def __init__(
        self,
        auction: Auction,
        emit: Callable[[LogKind, tuple[object, ...]], None],
        arm: Callable[[float | None], None],
    ) -> None:
        """``arm(when)`` must call ``on_deadline`` at monotonic time ``when``
        (None: cancel), replacing any earlier arming."""
        self.auction = auction
        self.emit = emit
        self._arm = arm
        self._armed: float | None = None
        self.links: dict[int, Link] = {}
        self._ids = itertools.count(1)
        self.stopping = False
        self._recorded = False  # a Record action was carried out

    def add(self, link: Link) -> int:
        """Register a new connection; return its number for the machine."""
        conn = next(self._ids)
        self.links[conn] = link
        return conn

    def lost(self, conn: int) -> None:
        """The connection is closed: a departure unless the machine let go first."""
        link = self.links.pop(conn, None)
        if link is not None and not link.detached:
            link.detached = True
            self.feed(Departed(conn))

    def shutdown(self) -> None:
        """SIGINT/SIGTERM: every client is told ``CANCELLED shutdown``."""
        self.stopping = True
        self.emit(LogKind.SHUTDOWN, ())
        self.feed(Shutdown())

    def on_deadline(self) -> None:
        """The armed deadline is reached."""
        self._armed = None
        self.feed(Tick())

    def feed(self, event: Event) -> None:
        """Give ``event`` to the machine and carry out what it answers."""
        actions = self.auction.handle(event, time.monotonic())
        self._recorded = False
        # One send per connection per batch: these event loops write at once.
        carry_out(coalesce(actions), self)
        recorded = self._recorded
        deadline = self.auction.deadline
        if deadline != self._armed:
            self._armed = deadline
            self._arm(deadline)
        if recorded:
            self.feed(Recorded())  # no ledger: "committed" at once

    # -- the actions' Executor ----------------------------------------------------

    def send(self, conn: int, data: bytes) -> None:
        link = self.links.get(conn)
        if link is not None:
            link.send(data)

    def close(self, conn: int) -> None:
        link = self.links.get(conn)
        if link is not None:
            link.detached = True
            link.finish()

    def log(self, log: Log) -> None:
        self.emit(log.kind, log.args)

    def record(self, record: AuctionRecord) -> None:
        self._recorded = True
