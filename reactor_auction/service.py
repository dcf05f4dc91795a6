"""The server's shell: connects the connections' transports to the auction machine.

Data flows one way: bytes from a transport -> LineBuffer -> events ->
Auction -> actions -> bytes to transports (and records to the ledger, lines
to the log). No protocol decision is made here; this module only carries
things across.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable

from .actions import carry_out
from .auction import Auction
from .events import (
    AuctionRecord,
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    LineTooLong,
    Log,
    LogKind,
    Recorded,
    Shutdown,
    Tick,
)
from .framing import LineBuffer
from .framing import LineTooLong as FramingTooLong
from .ledger import Ledger, LedgerBusy, LedgerError
from .loop import FatalError, Loop, Timer
from .net import Listener
from .protocol import SERVER_ERROR_LINE
from .transport import FlushQueue, SocketTransport, Transport

#: Emit a log event: (kind, args), worded by text.server_line.
Emit = Callable[[LogKind, tuple[object, ...]], None]

#: Connections the kernel queues for the listener before it accepts them: a
#: storm of them waits there rather than being refused.
BACKLOG = 4096
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


class _Connection:
    """One client connection, the handler of its transport: its id for the
    machine, its framing, and whether the machine has released it (its
    Close action was carried out, or it departed): no event about a
    released connection is fed."""

    __slots__ = ("conn_id", "transport", "lines", "released", "_service")

    transport: Transport

    def __init__(self, service: AuctionService, conn_id: int) -> None:
        self.conn_id = conn_id
        self.lines = LineBuffer()
        self.released = False
        self._service = service

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport
        self._service._connected(self)

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)
        self._service._take_lines(self)

    def eof_received(self) -> None:
        # Never after Close: a finishing transport consumes the peer's EOF itself.
        self._service._feed(InputEnded(self.conn_id))

    def connection_lost(self, exc: BaseException | None) -> None:
        self._service._lost(self, exc)

    def more_lines(self) -> None:
        """The next turn after ``AuctionService._take_lines`` ran out of
        budget. A deferred call of the loop, not a call of the transport:
        it contains its own exception as the transport would (``abort``
        with it), so that it ends this connection only."""
        transport = self.transport
        if transport.closing:
            return
        transport.resume_reading()
        try:
            self._service._take_lines(self)
        except FatalError:
            raise
        except Exception as exc:
            transport.abort(exc)


class _Executor:
    """Carries out the machine's actions for the service (actions.Executor):
    bytes and closes go to the connections' transports, logs to the
    console; a Record is kept in ``record_due`` for the service to commit
    once every action of the event is carried out."""

    __slots__ = ("_conns", "_emit", "record_due")

    def __init__(self, conns: dict[int, _Connection], emit: Emit) -> None:
        self._conns = conns
        self._emit = emit
        self.record_due: AuctionRecord | None = None

    def send(self, conn: int, data: bytes) -> None:
        connection = self._conns.get(conn)
        if connection is not None:
            connection.transport.write(data)

    def close(self, conn: int) -> None:
        connection = self._conns.get(conn)
        if connection is not None:
            connection.released = True
            connection.transport.finish()

    def log(self, log: Log) -> None:
        self._emit(log.kind, log.args)

    def record(self, record: AuctionRecord) -> None:
        self.record_due = record


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
        self._conns: dict[int, _Connection] = {}
        self._executor = _Executor(self._conns, emit)
        self._flushes = FlushQueue(loop)
        self._ids = itertools.count(1)
        self._listener: Listener | None = None
        self._deadline_timer: Timer | None = None
        self._deadline_when: float | None = None  # when _deadline_timer is due
        self._pending: AuctionRecord | None = None
        self._retry_delay = LEDGER_RETRY_FIRST
        self._retry_timer: Timer | None = None
        self._ledger_failure: str | None = None  # the reason last logged
        self._stopping_since: float | None = None
        self._failed = False  # the auction raised: feed it nothing more

    # -- start and stop ---------------------------------------------------------

    def listen(self, host: str, port: int) -> Listener:
        """Open the port; return the Listener. Raises net.ListenError."""
        self._listener = Listener(
            self._loop,
            host,
            port,
            self._accept,
            on_error=lambda peer, exc: self._emit(LogKind.CONNECTION_ERROR, (peer, repr(exc))),
            backlog=BACKLOG,
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
            conn.released = True
            conn.transport.write(SERVER_ERROR_LINE)  # ignored by a transport already finishing
            conn.transport.finish()
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

    # -- connections ------------------------------------------------------------

    def _accept(self, sock: socket.socket, peer: str) -> None:
        SocketTransport(
            self._flushes, sock, _Connection(self, next(self._ids)),
            max_output=self._max_output, peer=peer,
        )

    def _connected(self, conn: _Connection) -> None:
        """``conn``'s transport is ready: the machine learns of it."""
        conn_id = conn.conn_id
        transport = conn.transport
        self._conns[conn_id] = conn
        self._emit(LogKind.OPENED, (conn_id, transport.peer))
        self._feed(Connected(conn_id, transport.peer))

    def _take_lines(self, conn: _Connection) -> None:
        """Feed the machine the complete lines in ``conn``'s buffer, at most
        LINES_PER_TURN of them; if more may be waiting, pause reading and
        come back on the next turn."""
        transport = conn.transport
        lines = conn.lines
        conn_id = conn.conn_id
        try:
            for _ in range(LINES_PER_TURN):
                # A transport that is closing (its output overflowed, or the
                # auction let go of it) gets no more replies: stop here.
                if transport.closing:
                    return
                line = lines.next_line()
                if line is None:
                    return
                self._feed(LineReceived(conn_id, line))
        except FramingTooLong:
            self._feed(LineTooLong(conn_id))
            return
        if not transport.closing:
            transport.pause_reading()
            self._loop.call_soon(conn.more_lines)

    def _lost(self, conn: _Connection, exc: BaseException | None) -> None:
        """``conn``'s transport is closed (``exc``: why, None if in order)."""
        conn_id = conn.conn_id
        del self._conns[conn_id]
        if exc is not None and not isinstance(exc, OSError):
            self._emit(LogKind.CONNECTION_ERROR, (conn_id, repr(exc)))
        reason = "ok" if exc is None else str(exc) or type(exc).__name__
        self._emit(LogKind.CLOSED, (conn_id, reason))
        if not conn.released:
            conn.released = True
            self._feed(Departed(conn_id))
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
            raise FatalError.caused_by(exc) from exc
        # No coalesce() here: a transport sends what one turn wrote to it in
        # one system call anyway.
        executor = self._executor
        error: Exception | None = None
        try:
            carry_out(actions, executor)
        except Exception as exc:  # the first failure, once every action was tried
            error = exc
        record, executor.record_due = executor.record_due, None
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
            # Now that the machine's actions are all carried out: raised in
            # a handler call of a connection, its transport closes that
            # connection; from anything else (a deadline, the ledger, a
            # signal) the loop stops with FatalError.
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
        self._ledger_failure = None
        self._pending = None
        self._feed(Recorded())

    def _ledger_retry(self, exc: Exception) -> None:
        if isinstance(exc, LedgerBusy):
            if self._retry_delay == LEDGER_RETRY_FIRST:
                self._emit(LogKind.LEDGER_WAITING, (exc,))
        elif str(exc) != self._ledger_failure:
            # Said once per reason: an outage retried every second for an
            # hour is one line, and a new reason (the disk full, then the
            # directory gone) is another.
            self._ledger_failure = str(exc)
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
