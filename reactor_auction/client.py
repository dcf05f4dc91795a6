"""``auc_client``: the auction client's command line and its shell.

One ``loop.Loop`` watches the server connection and standard input, with
no threads: a server message (bidding started, auction cancelled, the result)
is shown the moment it arrives, whether or not the person has typed anything.
Every protocol decision is taken by ``session.Session``; this module carries
bytes and text between it and the world, and owns one policy of its own: when
to connect again after ``BUSY`` (``--retry``).

Exit status: ``session.ExitStatus``, worded in ``text.CLIENT_EXIT_TEXT`` and
listed by ``--help``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TextIO

from . import __version__, text
from .cli import exit_status_epilog, non_negative_int, positive_seconds, remote_port
from .framing import LineBuffer, LineTooLong
from .loop import FatalError, Loop, Timer
from .net import connect
from .session import ExitStatus, Output, Session
from .stdin import input_reader
from .transport import FlushQueue, SocketTransport, Transport

#: First wait before connecting again after BUSY; it doubles up to RETRY_MAX.
RETRY_FIRST = 0.2
RETRY_MAX = 2.0
#: Longest line read from standard input (a terminal allows 4096 bytes); a
#: longer one ends the input.
MAX_INPUT_LINE = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``auc_client``."""
    parser = argparse.ArgumentParser(
        prog="auc_client",
        description="Take part in a sealed-bid auction: the first to connect is the Seller,\n"
        "the next ones are Buyers. On a terminal, type your answers; otherwise\n"
        "each line of standard input answers the next prompt.",
        epilog=exit_status_epilog(
            (status.value, text.CLIENT_EXIT_TEXT[status]) for status in ExitStatus
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", help="the Auctioneer server's host name or address")
    parser.add_argument("port", type=remote_port, help="the server's TCP port")
    parser.add_argument(
        "--retry", type=non_negative_int, default=0, metavar="N",
        help="while the server is busy, connect again up to N more times, waiting "
        f"{RETRY_FIRST:g}s, then twice as long each time (at most {RETRY_MAX:g}s)",
    )
    parser.add_argument(
        "--connect-timeout", type=positive_seconds, default=10.0, metavar="SECONDS",
        help="give up connecting after this long (default: 10)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


class Client:
    """Runs sessions over the loop: connects, retries while busy, carries
    each Output out (text to standard output, lines to the server, standard
    input read on demand), and stops the loop with the exit status."""

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        *,
        interactive: bool,
        retries: int = 0,
        connect_timeout: float = 10.0,
        stdin_fd: int = 0,
    ) -> None:
        self._loop = loop
        self._host = host
        self._port = port
        self._retries = retries
        self._attempt = 0  # retries made so far
        self._connect_timeout = connect_timeout
        self.session = Session(interactive=interactive)
        self.status: ExitStatus | None = None
        self._flushes = FlushQueue(loop)
        self._stream: Transport | None = None
        self._lines = LineBuffer()
        self._retry_timer: Timer | None = None
        self._input = LineBuffer(MAX_INPUT_LINE)
        self._reader = input_reader(loop, stdin_fd, self._stdin_data, self._stdin_eof)

    # -- connecting -------------------------------------------------------------

    def connect(self) -> bool:
        """Connect (blocking, at most the connect timeout); return False if that
        failed, with the message shown and ``status`` set."""
        try:
            sock = connect(self._host, self._port, self._connect_timeout)
        except OSError as exc:
            _err(self._connect_error(exc))
            self._stop(ExitStatus.CANNOT_CONNECT)
            return False
        self._lines = LineBuffer()
        SocketTransport(self._flushes, sock, _ServerLink(self))
        return True

    def _connect_error(self, exc: OSError) -> str:
        where = f"{self._host}:{self._port}"
        if isinstance(exc, socket.gaierror):
            return text.client_text("unknown_host", host=self._host)
        if isinstance(exc, ConnectionRefusedError):
            return text.client_text("refused", where=where)
        if isinstance(exc, TimeoutError):
            return text.client_text(
                "connect_timeout", where=where, seconds=self._connect_timeout
            )
        return text.client_text(
            "connect_failed", where=where, reason=exc.strerror or type(exc).__name__
        )

    def _retry(self) -> None:
        """BUSY with retries left: drop this connection, try again later."""
        self._attempt += 1
        delay = min(RETRY_FIRST * 2 ** (self._attempt - 1), RETRY_MAX)
        _out(
            text.client_text("retry", delay=delay, attempt=self._attempt, retries=self._retries)
        )
        self._close_stream(reset=False)
        self.session = self.session.successor()
        self._retry_timer = self._loop.call_later(delay, self._retry_now)
        self._update_reader()

    def _retry_now(self) -> None:
        self._retry_timer = None
        self.connect()

    # -- the session's outputs --------------------------------------------------

    def _apply(self, out: Output) -> None:
        if out.notices:
            _out(text.notices_text(out.notices))
        stream = self._stream
        if stream is not None:
            for line in out.send:
                stream.write(line)
        if out.status is None:
            self._update_reader()
        elif out.status is ExitStatus.BUSY and self._attempt < self._retries:
            self._retry()
        else:
            # After a final line the server closes too: a plain close. Leaving
            # early sends a reset, so the server sees a departure, not EOF.
            self._close_stream(reset=out.close_with_reset)
            self._stop(out.status)

    def _update_reader(self) -> None:
        """Interactive: read all the time. Scripted: only while a prompt waits."""
        if self.status is None and self.session.should_read_input:
            self._reader.resume()
        else:
            self._reader.pause()

    def _stop(self, status: ExitStatus) -> None:
        self.status = status
        self._reader.pause()
        self._loop.stop()

    def _close_stream(self, *, reset: bool) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.abort(reset=reset)

    # -- events -----------------------------------------------------------------

    def interrupted(self, signum: int = signal.SIGINT) -> None:
        """Ctrl-C (from the loop's signal handling)."""
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        self._apply(self.session.interrupted())

    def _stdin_data(self, data: bytes) -> None:
        self._input.feed(data)
        try:
            # One line at a time: a scripted session may stop wanting input
            # after the first; the rest stay buffered for later prompts.
            while self.status is None and (line := self._input.next_line()) is not None:
                self._apply(self.session.user_line(line))
        except LineTooLong:
            # Not a line anyone typed: stop reading, as at the end of input.
            self._reader.stop()
            self._apply(self.session.input_ended())

    def _stdin_eof(self) -> None:
        if len(self._input):  # a last line without its newline still counts
            self._stdin_data(b"\n")
        if self.status is None:
            self._apply(self.session.input_ended())

    # the server connection, reported by its _ServerLink

    def _server_made(self, stream: Transport) -> None:
        self._stream = stream
        self._apply(self.session.connected())

    def _server_data(self, stream: Transport, data: bytes) -> None:
        if stream is not self._stream:
            return
        self._lines.feed(data)
        try:
            while self._stream is stream and (line := self._lines.next_line()) is not None:
                self._apply(self.session.server_line(line))
        except LineTooLong:
            self._apply(self.session.server_line_too_long())

    def _server_eof(self, stream: Transport) -> None:
        if stream is self._stream:
            self._apply(self.session.connection_closed())

    def _server_lost(self, stream: Transport, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, OSError):
            # An exception in one of our own callbacks: a bug, not the network.
            raise FatalError.caused_by(exc) from exc
        if stream is self._stream:
            self._stream = None
            self._apply(self.session.connection_closed())

    def close(self) -> None:
        """Release the connection (at exit)."""
        self._close_stream(reset=self.status is None)


class _ServerLink:
    """The handler of one connection to the server: reports it to the
    client together with its transport, so that the client can tell the
    current connection from one it let go of (before a retry)."""

    __slots__ = ("_client", "_transport")

    _transport: Transport

    def __init__(self, client: Client) -> None:
        self._client = client

    def connection_made(self, transport: Transport) -> None:
        self._transport = transport
        self._client._server_made(transport)

    def data_received(self, data: bytes) -> None:
        self._client._server_data(self._transport, data)

    def eof_received(self) -> None:
        self._client._server_eof(self._transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._client._server_lost(self._transport, exc)


def _out(message: str) -> None:
    """Show ``message`` (text.py's words) on standard output at once."""
    _write(sys.stdout, message)


def _err(message: str) -> None:
    """Show ``message`` (text.py's words) on standard error at once."""
    _write(sys.stderr, message)


def _write(stream: TextIO, message: str) -> None:
    try:
        stream.write(message + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # nobody is reading any more; the exit status still tells


def main(argv: Sequence[str] | None = None) -> int:
    """Run the client; return its exit status (argparse exits 2 itself)."""
    args = build_parser().parse_args(argv)
    try:
        return int(_run(args))
    except KeyboardInterrupt:  # Ctrl-C before the loop's handler is installed
        _out(text.client_text("interrupted"))
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # FatalError or a bug: one line, not a traceback
        _err(text.client_text("internal_error", detail=f"{type(exc).__name__}: {exc}"))
        return ExitStatus.INTERNAL


def _run(args: argparse.Namespace) -> ExitStatus:
    interactive = os.isatty(0)
    loop = Loop()
    client = Client(
        loop,
        args.host,
        args.port,
        interactive=interactive,
        retries=args.retry,
        connect_timeout=args.connect_timeout,
    )
    try:
        if client.connect():
            loop.add_signal_handler(signal.SIGINT, client.interrupted)
            if client.status is None:
                loop.run()
    finally:
        client.close()
        loop.close()
    assert client.status is not None
    return client.status


if __name__ == "__main__":
    sys.exit(main())
