"""``auc_server``: command-line wiring for the auction server.

Exit status: ``exits.ServerExit``, worded in ``exits.SERVER_EXIT_TEXT`` and
listed by ``--help``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from . import __version__, text
from .auction import Auction
from .cli import (
    exit_status_epilog,
    non_negative_int,
    port_number,
    positive_int,
    positive_seconds,
)
from .console import discard_stdout
from .events import LogKind
from .exits import SERVER_EXIT_TEXT, ServerExit
from .ledger import DEFAULT_PATH, Ledger, LedgerError
from .loop import Loop
from .net import ListenError, raise_fd_limit
from .service import MAX_OUTPUT, AuctionService

#: Default --poll-us: see loop.PollWindow. Long enough to catch a client's
#: answer on the same machine without a wake-up; short enough that a wasted
#: poll costs little.
POLL_US = 200

#: Descriptors kept back from --max-buyers: stdio, listener, selector, signal
#: socket pair, ledger files, the seller and a few refused connections.
FD_RESERVE = 64


class ConsoleLog:
    """Prints log events: the transcript's lines on standard output, errors on
    standard error; ``quiet`` keeps only errors, ``verbose`` adds detail."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose

    def __call__(self, kind: LogKind, args: tuple[object, ...]) -> None:
        if kind in text.ERRORS:
            stream = sys.stderr
        elif self.quiet or (kind in text.VERBOSE and not self.verbose):
            return
        else:
            stream = sys.stdout
        try:
            stream.write(text.server_line(kind, args) + "\n")
            stream.flush()
        except (OSError, ValueError):
            # The console went away (`auc_server ... | head -1`, a closed
            # terminal): the auction must go on without it.
            if stream is sys.stdout:
                self.quiet = True
                discard_stdout()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``auc_server``."""
    parser = argparse.ArgumentParser(
        prog="auc_server",
        description="Host sealed-bid auctions over TCP (see docs/PROTOCOL.md).\n"
        "'auc_server history' lists past auctions.",
        epilog=exit_status_epilog(
            (status.value, SERVER_EXIT_TEXT[status]) for status in ServerExit
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("port", type=port_number, help="TCP port to listen on (0: any free port)")
    parser.add_argument("--host", default="", help="address to listen on (default: all interfaces)")
    parser.add_argument(
        "--request-timeout", type=positive_seconds, default=300.0, metavar="SECONDS",
        help="time the seller has to send a valid request (default: 300)",
    )
    parser.add_argument(
        "--bid-timeout", type=positive_seconds, default=300.0, metavar="SECONDS",
        help="time from BID until bidding closes (default: 300)",
    )
    parser.add_argument(
        "--max-buyers", type=positive_int, default=1000, metavar="N",
        help="the largest buyer count a seller may ask for (default: 1000; capped by "
        "the file-descriptor limit)",
    )
    parser.add_argument(
        "--max-output", type=non_negative_int, default=MAX_OUTPUT, metavar="BYTES",
        help=f"unread output a client may leave before it is disconnected (default: {MAX_OUTPUT})",
    )
    parser.add_argument(
        "--poll-us", type=non_negative_int, default=POLL_US, metavar="MICROSECONDS",
        help="longest the server polls for the next event before it sleeps; the window "
        "adapts to the traffic and is 0 while events are far apart (default: "
        f"{POLL_US}; 0: always sleep at once)",
    )
    ledger = parser.add_mutually_exclusive_group()
    ledger.add_argument(
        "--ledger", default=DEFAULT_PATH, metavar="PATH",
        help=f"SQLite file recording every auction (default: ./{DEFAULT_PATH})",
    )
    ledger.add_argument("--no-ledger", action="store_true", help="record nothing")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true", help="print errors only")
    talk.add_argument("--verbose", action="store_true", help="also print per-connection detail")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server (or ``history``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["history"]:
        from .history import main as history_main

        return history_main(argv[1:])
    try:
        return _serve(build_parser().parse_args(argv))
    except KeyboardInterrupt:  # before the signal handlers are installed
        return ServerExit.INTERRUPTED


def max_buyers_allowed(requested: int, log: ConsoleLog) -> int:
    """Raise the descriptor limit as far as it goes; return ``requested``
    lowered (with a warning) to what that limit allows."""
    soft, _ = raise_fd_limit()
    if requested <= soft - FD_RESERVE:
        return requested
    allowed = max(1, soft - FD_RESERVE)
    log(LogKind.FD_LIMIT, (requested, allowed))
    return allowed


def _serve(args: argparse.Namespace) -> int:
    log = ConsoleLog(quiet=args.quiet, verbose=args.verbose)
    max_buyers = max_buyers_allowed(args.max_buyers, log)
    ledger = None
    if not args.no_ledger:
        try:
            ledger = Ledger(args.ledger)
        except LedgerError as exc:
            print(f"auc_server: {exc}", file=sys.stderr)
            return ServerExit.LEDGER
    loop = Loop(poll_max=args.poll_us * 1e-6)
    auction = Auction(
        max_buyers=max_buyers,
        request_timeout=args.request_timeout,
        bid_timeout=args.bid_timeout,
    )
    service = AuctionService(loop, auction, log, ledger=ledger, max_output=args.max_output)
    try:
        listener = service.listen(args.host, args.port)
    except ListenError as exc:
        print(
            f"auc_server: cannot listen on port {args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return ServerExit.LISTEN
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, service.shutdown)
    log(LogKind.LISTENING, (args.host or "*", listener.port))
    log(LogKind.READY, ())
    try:
        loop.run()
    except Exception as exc:  # FatalError, or a bug in the loop itself
        log(LogKind.FATAL, (exc,))
        service.abort_all()
        return ServerExit.INTERNAL
    finally:
        listener.close()
        loop.close()
        if ledger is not None:
            ledger.close()
    return ServerExit.OK


if __name__ == "__main__":
    sys.exit(main())
