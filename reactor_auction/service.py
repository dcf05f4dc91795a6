"""The server's shell: connects the reactor's streams to the auction machine.

Data flows one way: bytes from a Stream -> LineBuffer -> events -> Auction ->
actions -> bytes to Streams (and records to the ledger, lines to the log).
No protocol decision is made here; this module only carries things across.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable

from .auction import Auction
from .events import (
    AuctionRecord,
    Close,
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    LineTooLong,
    Log,
    LogKind,
    Record,
    Recorded,
    Send,
    Shutdown,
    Tick,
)
from .framing import LineBuffer
from .framing import LineTooLong as FramingTooLong
from .ledger import Ledger, LedgerBusy, LedgerError
from .protocol import SERVER_ERROR_LINE
from .reactor import FatalError, Listener, Loop, Stream, Timer, format_address

#: Emit a log event: (kind, args), worded by text.server_line.
Emit = Callable[[LogKind, tuple[object, ...]], None]

#: Unsent output a client may leave unread before it counts as departed.
MAX_OUTPUT = 64 * 1024
#: The kernel's send buffer for each client (it doubles this for its own
#: bookkeeping). Left alone, Linux grows it up to tcp_wmem's maximum (4 MiB by
#: default) for a client that does not read, so --max-output would only be
#: reached after megabytes of kernel memory per connection. Server lines are
#: short: this is ample for any client that reads.
SEND_BUFFER = 64 * 1024
#: Lines of one connection handled per turn of the loop. The rest wait in its
#: LineBuffer (reading paused) until the other connections had their turn, so
#: a client pipelining thousands of lines cannot stall everyone else.
LINES_PER_TURN = 64
#: First and longest wait before retrying a busy ledger.
LEDGER_RETRY_FIRST = 0.02
LEDGER_RETRY_MAX = 1.0
#: How long shutdown waits for final lines to flush and the ledger to commit.
SHUTDOWN_GRACE = 3.0


class _Conn:
    """One client connection: its stream, its framing, whether the auction
    has let go of it (after its Close action)."""

    __slots__ = ("stream", "lines", "detached")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.lines = LineBuffer()
        self.detached = False


class AuctionService:
    """Runs one Auction over the connections a Listener accepts."""

    def __init__(
        self,
        loop: Loop,
        auction: Auction,
        emit: Emit,
        *,
        ledger: Ledger | None = None,
        max_output: int = MAX_OUTPUT,
    ) -> None:
        self._loop = loop
        self._auction = auction
        self._emit = emit
        self._ledger = ledger
        self._max_output = max_output
        self._conns: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._listener: Listener | None = None
        self._deadline_timer: Timer | None = None
        self._deadline_when: float | None = None  # when _deadline_timer is due
        self._pending: AuctionRecord | None = None
        self._retry_delay = LEDGER_RETRY_FIRST
        self._retry_timer: Timer | None = None
        self._stopping_since: float | None = None
        self._failed = False  # the auction raised: feed it nothing more

    # -- start and stop ---------------------------------------------------------

    def listen(self, host: str, port: int, backlog: int = 4096) -> Listener:
        """Open the port; return the Listener. Raises reactor.ListenError."""
        self._listener = Listener(
            self._loop,
            host,
            port,
            self._accept,
            backlog=backlog,
            on_exhausted=lambda exc: self._emit(LogKind.FD_EXHAUSTED, (exc.strerror,)),
            send_buffer=SEND_BUFFER,
        )
        return self._listener

    def shutdown(self, signum: int = 0) -> None:
        """Stop: every client is told ``CANCELLED shutdown``; the loop stops
        once final lines are flushed (at most SHUTDOWN_GRACE seconds). A second
        call stops at once."""
        if self._stopping_since is not None:
            self._loop.stop()
            return
        self._emit(LogKind.SHUTDOWN, ())
        self._begin_stop()
        self._feed(Shutdown())
        self._stop_when_idle()

    def abort_all(self) -> None:
        """After a FatalError: tell every client ``CANCELLED server-error``,
        then run the loop until those lines are flushed and the connections
        closed (at most SHUTDOWN_GRACE seconds). Best effort: returns quietly
        whatever goes wrong, the caller exits anyway."""
        self._failed = True
        self._pending = None
        for timer in (self._deadline_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._begin_stop()
        for conn in list(self._conns.values()):
            conn.detached = True
            conn.stream.write(SERVER_ERROR_LINE)  # ignored by a stream already finishing
            conn.stream.finish()
        if not self._conns:
            return
        try:
            self._loop.run()
        except Exception:  # exiting anyway, and the first error is logged
            pass

    def _begin_stop(self) -> None:
        """Accept no one new, and stop the loop after SHUTDOWN_GRACE at most."""
        self._stopping_since = self._loop.time()
        if self._listener is not None:
            self._listener.close()
        self._loop.call_later(SHUTDOWN_GRACE, self._loop.stop)

    @property
    def connections(self) -> int:
        """Return the number of open client connections."""
        return len(self._conns)

    def _stop_when_idle(self) -> None:
        if self._stopping_since is not None and not self._conns and self._pending is None:
            self._loop.stop()

    # -- streams ----------------------------------------------------------------

    def _accept(self, sock: socket.socket, address: object) -> None:
        conn_id = next(self._ids)
        stream = Stream(
            self._loop, sock, self, tag=conn_id, max_output=self._max_output,
            peer=format_address(address),
        )
        self._conns[conn_id] = _Conn(stream)
        self._emit(LogKind.OPENED, (conn_id, stream.peer))
        self._feed(Connected(conn_id, stream.peer))

    def data_received(self, stream: Stream, data: bytes) -> None:
        conn = self._conns[stream.tag]
        conn.lines.feed(data)
        self._take_lines(conn)

    def _take_lines(self, conn: _Conn) -> None:
        """Feed the machine the complete lines in ``conn``'s buffer, at most
        LINES_PER_TURN of them; if more may be waiting, pause reading and
        come back on the next turn."""
        stream = conn.stream
        lines = conn.lines
        try:
            for _ in range(LINES_PER_TURN):
                # A stream that is closing (its output overflowed, or the
                # auction let go of it) gets no more replies: stop here.
                if stream.closing:
                    return
                line = lines.next_line()
                if line is None:
                    return
                self._feed(LineReceived(stream.tag, line))
        except FramingTooLong:
            self._feed(LineTooLong(stream.tag))
            return
        if not stream.closing:
            stream.pause_reading()
            stream.defer(lambda: self._more_lines(conn))

    def _more_lines(self, conn: _Conn) -> None:
        """The next turn after ``_take_lines`` ran out of budget."""
        if conn.stream.closing:
            return
        conn.stream.resume_reading()
        self._take_lines(conn)

    def eof_received(self, stream: Stream) -> None:
        # Never after Close: a finishing stream consumes the peer's EOF itself.
        self._feed(InputEnded(stream.tag))

    def connection_lost(self, stream: Stream, exc: BaseException | None) -> None:
        conn = self._conns.pop(stream.tag)
        if exc is not None and not isinstance(exc, OSError):
            self._emit(LogKind.CONNECTION_ERROR, (stream.tag, repr(exc)))
        self._emit(
            LogKind.CLOSED, (stream.tag, "ok" if exc is None else str(exc) or type(exc).__name__)
        )
        if not conn.detached:
            conn.detached = True
            self._feed(Departed(stream.tag))
        self._stop_when_idle()

    # -- the machine ------------------------------------------------------------

    def _feed(self, event: Event) -> None:
        if self._failed:
            return
        try:
            actions = self._auction.handle(event, self._loop.time())
        except Exception as exc:
            # A bug in the auction's state: nothing it says can be trusted now.
            self._failed = True
            raise FatalError(f"{type(exc).__name__}: {exc}") from exc
        record: AuctionRecord | None = None
        error: Exception | None = None
        conns = self._conns
        # No coalesce() here: a Stream sends what one turn wrote to it in one
        # system call anyway.
        for action in actions:
            # One action failing must not skip the others (another client's
            # final line and Close, the Record): the machine has moved on.
            try:
                if isinstance(action, Send):
                    conn = conns.get(action.conn)
                    if conn is not None:
                        conn.stream.write(action.data)
                elif isinstance(action, Log):
                    self._emit(action.kind, action.args)
                elif isinstance(action, Close):
                    conn = conns.get(action.conn)
                    if conn is not None:
                        conn.detached = True  # first: finish() may close at once
                        conn.stream.finish()
                elif isinstance(action, Record):
                    record = action.record
            except Exception as exc:
                error = error or exc
        if self._auction.deadline != self._deadline_when:
            self._arm_deadline()
        if record is not None:
            # A newer record (shutdown cancelling a pending result) replaces
            # the one waiting for the ledger.
            self._pending = record
            self._retry_delay = LEDGER_RETRY_FIRST
            if self._retry_timer is not None:
                self._retry_timer.cancel()
            self._commit()
        if error is not None:
            # Now that the machine's actions are all carried out: raised from
            # a connection's event, the loop closes that connection; from
            # anything else (a deadline, the ledger, accept, a signal) it
            # becomes a FatalError (Loop._contain).
            raise error

    def _arm_deadline(self) -> None:
        """Keep one timer at the machine's deadline (none when it has none)."""
        when = self._auction.deadline
        timer = self._deadline_timer
        if timer is not None:
            timer.cancel()
        self._deadline_when = when
        self._deadline_timer = None if when is None else self._loop.call_at(when, self._on_deadline)

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        self._deadline_when = None
        self._feed(Tick())

    # -- the ledger -------------------------------------------------------------

    def _commit(self) -> None:
        """Commit the pending record; on success release the results.

        A busy or failing ledger is retried on a timer with back-off, never
        by blocking the loop; results wait, newcomers still get BUSY.
        """
        self._retry_timer = None
        record = self._pending
        if record is None:
            return
        if self._ledger is not None:
            try:
                number = self._ledger.record(record)
            except (LedgerBusy, LedgerError) as exc:
                self._ledger_retry(exc)
                return
            self._emit(LogKind.RECORDED, (number, self._ledger.path))
        self._pending = None
        self._feed(Recorded())

    def _ledger_retry(self, exc: Exception) -> None:
        if isinstance(exc, LedgerBusy):
            if self._retry_delay == LEDGER_RETRY_FIRST:
                self._emit(LogKind.LEDGER_WAITING, (exc,))
        else:
            self._emit(LogKind.LEDGER_FAILED, (exc,))
        stopping = self._stopping_since
        if stopping is not None and self._loop.time() - stopping > SHUTDOWN_GRACE / 2:
            # Stopping and the ledger will not take it: tell the clients anyway
            # (CANCELLED shutdown is not a result) rather than leave them hanging.
            self._emit(LogKind.LEDGER_GAVE_UP, ())
            self._pending = None
            self._feed(Recorded())
            return
        self._retry_timer = self._loop.call_later(self._retry_delay, self._commit)
        self._retry_delay = min(self._retry_delay * 2, LEDGER_RETRY_MAX)
