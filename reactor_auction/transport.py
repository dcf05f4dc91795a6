"""Transports: a connection's bytes between a socket and a handler.

The shape is asyncio's transport/protocol split (``selector_events.py``):
a ``Handler`` is told of the connection (``connection_made``), of its input
(``data_received``, ``eof_received``) and of its end (``connection_lost``),
and drives it through a ``Transport`` (``write``, ``finish``, ``abort``,
``pause_reading``, ``resume_reading``). A layer between the socket and the
application (TLS) is a handler to the transport below it and a transport to
the handler above it.

The write path follows redis's ``ae.c``/``networking.c``: what a turn of the
loop writes is sent when the turn's events are handled, before the loop
sleeps again (``FlushQueue``, redis's ``handleClientsWithPendingWrites`` in
``beforeSleep``), so a reply and a result produced in the same turn leave in
one send; keep only the unsent tail; watch ``EVENT_WRITE`` only while such a
tail is waiting; treat only ``BlockingIOError``/``InterruptedError`` as
"later"; unregister before close; close exactly once.

Two rules spare every handler ordering worries: a transport contains an
exception raised by its own handler's calls (it closes itself with that
exception, which ``connection_lost`` reports), and ``connection_lost`` is
always delivered by a deferred call of the loop, never from inside a call
the handler made. An exception raised by ``connection_lost`` itself is the
handler's own state in doubt: the loop stops with FatalError.
"""

from __future__ import annotations

import selectors
import socket
import struct
from collections.abc import Callable
from typing import Protocol

from .loop import AGAIN, FatalError, Loop, Timer
from .net import format_peer

#: What one recv() asks for.
READ_SIZE = 65536
#: After a final line: how long to drain and discard the peer's input before
#: closing, so that a peer with unread junk in flight still gets the line
#: instead of a reset.
LINGER_SECONDS = 2.0
#: ...and how much of it to discard before giving up and closing anyway.
LINGER_BYTES = 256 * 1024

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class OutputOverflow(ConnectionError):
    """A peer let more than the cap of unsent output pile up."""


class Transport(Protocol):
    """What a handler drives its connection with."""

    @property
    def peer(self) -> str:
        """The peer's ``ip:port``."""

    @property
    def closing(self) -> bool:
        """True once ``finish``/``abort`` began or the connection failed:
        nothing more will be written, so input need not be handled."""

    @property
    def pending_output(self) -> int:
        """The number of bytes written but not yet sent."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` to be sent (ignored once closing)."""

    def finish(self) -> None:
        """Send what was written, then end the connection in order."""

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        """End the connection now (``reset``: with a TCP RST); ``exc`` is
        what ``connection_lost`` reports. On a transport closed already, an
        ``exc`` replaces what its ``connection_lost``, if still to come,
        reports (a handler failing after it closed its transport)."""

    def pause_reading(self) -> None:
        """Deliver no input until ``resume_reading``."""

    def resume_reading(self) -> None:
        """Deliver input again."""


class Handler(Protocol):
    """What a transport reports to (asyncio's protocol)."""

    def connection_made(self, transport: Transport) -> None:
        """The connection is ready (for TLS: after the handshake); called
        once, before any other method."""

    def data_received(self, data: bytes) -> None:
        """Input arrived."""

    def eof_received(self) -> None:
        """The peer sends nothing more (it may still read)."""

    def connection_lost(self, exc: BaseException | None) -> None:
        """Called exactly once, by a deferred call of the loop, when the
        connection is closed for any reason: ``exc`` None for an orderly
        close (``finish()``, ``abort()`` without an exception), else what
        ended it (an OSError from the socket, OutputOverflow, the exception
        the handler raised or gave to ``abort``)."""


class FlushQueue:
    """The socket transports of one loop that have output to send.

    Registered as the loop's before-sleep hook: once a turn's events are
    handled, every transport written to sends its data, and only then does
    any transport that was finished send its FIN, so the last result of an
    auction is not held up behind the other clients' shutdowns.
    """

    __slots__ = ("loop", "_unflushed", "_unfinished")

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        # In the order of their first write since the last flush.
        self._unflushed: list[SocketTransport] = []
        # Flushed, finished, and owing the FIN once every transport had its send.
        self._unfinished: list[SocketTransport] = []
        loop.add_before_sleep(self.flush)

    def flush(self) -> None:
        """Send what every transport wrote since the last flush, then the
        FINs that were waiting for it.

        An exception (a bug: socket errors close their transport) leaves the
        transports not reached queued, for whatever runs the loop next
        (``AuctionService.abort_all``), and propagates.
        """
        if self._unflushed:
            transports, self._unflushed = self._unflushed, []
            _each(transports, SocketTransport._flush, self._unflushed)
        if self._unfinished:
            transports, self._unfinished = self._unfinished, []
            _each(transports, SocketTransport._send_fin, self._unfinished)


def _each(
    transports: list[SocketTransport],
    method: Callable[[SocketTransport], None],
    pending: list[SocketTransport],
) -> None:
    """Call ``method`` on each transport; if one raises, the transports not
    reached go back to the front of ``pending``, still to be done."""
    for index, transport in enumerate(transports):
        try:
            method(transport)
        except BaseException:
            pending[:0] = transports[index + 1:]
            raise


class SocketTransport:
    """A Transport over a non-blocking stream socket.

    Reads go to the handler as they arrive. ``write`` appends to the buffer,
    which the FlushQueue sends once the current turn's events are handled;
    only the unsent tail stays, watched with ``EVENT_WRITE`` until it drains.
    ``finish`` closes gracefully after the last byte; ``abort`` closes now.
    """

    __slots__ = (
        "peer", "_loop", "_flushes", "_sock", "_fd", "_handler", "_wbuf", "_max_output",
        "_reading", "_eof", "_finishing", "_closed", "_mask", "_linger", "_discarded",
        "_queued", "_blocked", "_exc",
    )

    def __init__(
        self,
        flushes: FlushQueue,
        sock: socket.socket,
        handler: Handler,
        *,
        max_output: int | None = None,
        peer: str | None = None,
    ) -> None:
        """Take over ``sock`` on the loop of ``flushes``, and tell
        ``handler`` it is made. ``max_output`` caps unsent output: exceeding
        it closes the transport as lost. ``peer`` is the peer's ``ip:port``
        if the caller knows it (from accept), sparing a getpeername call.

        Raises OSError if the socket cannot be watched; the handler has not
        been told of it then. An exception from ``connection_made`` aborts
        the transport with it, as one from any handler call does.
        """
        self.peer = format_peer(sock) if peer is None else peer
        self._loop = flushes.loop
        self._flushes = flushes
        self._sock = sock
        self._fd = sock.fileno()
        self._handler = handler
        self._wbuf = bytearray()
        self._max_output = max_output
        self._reading = True
        self._eof = False
        self._finishing = False
        self._closed = False
        self._mask = 0
        self._linger: Timer | None = None
        self._discarded = 0
        self._queued = False  # in the FlushQueue's transports to flush
        self._blocked = False  # a flush left a tail: EVENT_WRITE sends the rest
        self._exc: BaseException | None = None  # for connection_lost
        sock.setblocking(False)
        self._update()
        try:
            handler.connection_made(self)
        except FatalError:
            raise
        except Exception as exc:
            self.abort(exc)

    @property
    def closing(self) -> bool:
        """True once ``finish``/``abort`` began or the connection failed:
        nothing more will be written, so input need not be handled."""
        return self._finishing or self._closed

    @property
    def pending_output(self) -> int:
        """Return the number of bytes written but not yet sent."""
        return len(self._wbuf)

    def pause_reading(self) -> None:
        """Stop delivering input until ``resume_reading``."""
        self._reading = False
        self._update()

    def resume_reading(self) -> None:
        """Deliver input again."""
        self._reading = True
        self._update()

    def write(self, data: bytes) -> None:
        """Queue ``data``; it is sent when this turn's events are handled,
        together with anything else written to this transport meanwhile.

        Ignored once closing. ``max_output`` caps what the peer leaves
        unread: output the kernel refused (waiting for EVENT_WRITE) plus what
        is written after it. Going over closes the transport with
        OutputOverflow.
        """
        if self._closed or self._finishing:
            return
        self._wbuf += data
        if self._blocked:
            if self._max_output is not None and len(self._wbuf) > self._max_output:
                self._wbuf.clear()
                self._close(self._overflow())
        elif not self._queued:
            self._queued = True
            self._flushes._unflushed.append(self)

    def _overflow(self) -> OutputOverflow:
        """Return the error that closes a transport whose peer left too much unread."""
        return OutputOverflow(f"more than {self._max_output} bytes unread")

    def finish(self) -> None:
        """Flush what was written, shut down the write side, drain input
        briefly (discarding it), then close; ``connection_lost(None)``
        follows. Flushing and draining together get LINGER_SECONDS."""
        if self._closed or self._finishing:
            return
        self._finishing = True
        self._reading = True  # to see the peer's EOF and discard its junk
        if not self._wbuf:
            self._shutdown_write()
        else:
            # The flush (or, for a tail, the writable handler) sends the FIN
            # once the buffer is drained. A peer that does not read could hold
            # the descriptor for ever with the final line unsent: flushing
            # gets the linger deadline too.
            self._linger = self._loop.call_later(LINGER_SECONDS, self._linger_over)
            self._update()

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        """Close now; ``reset`` sends a TCP RST, which tells the peer
        unmistakably that this side left. Output still buffered is sent first
        if the kernel takes it at once (as it would have been had it been
        written before this turn); whatever it does not take is dropped.
        ``connection_lost(exc)`` follows.

        Closed already: ``exc``, if given, is what a ``connection_lost``
        still to come reports instead (a handler that closed its transport,
        then failed).
        """
        if self._closed:
            if exc is not None:
                self._exc = exc  # read when connection_lost is delivered
            return
        if self._wbuf:
            try:
                self._sock.send(self._wbuf)
            except OSError:
                pass
            self._wbuf.clear()
        if reset:
            try:
                self._sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass
        self._close(exc)

    # -- internals --------------------------------------------------------------

    def _update(self) -> None:
        """Watch exactly what is needed: input while reading, output while
        something is unsent."""
        if self._closed:
            return
        mask = 0
        if self._reading and not self._eof:
            mask |= _READ
        if self._blocked:
            mask |= _WRITE
        if mask != self._mask:
            # Reading only (nearly always): the loop calls _on_readable itself.
            callback = self._on_event if mask & _WRITE else self._on_readable
            self._loop.update_watch(self._fd, self._mask, mask, callback)
            self._mask = mask

    def _on_event(self, mask: int) -> None:
        if mask & _WRITE:
            self._on_writable()
        if mask & _READ and not self._closed:
            self._on_readable()

    def _on_readable(self, mask: int = _READ) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except AGAIN:
            return
        except OSError as exc:
            self._close(exc)
            return
        if self._finishing:
            if not data:
                # The peer half-closed; it may still be reading its final
                # line, so a pending tail is flushed first (_shutdown_write
                # closes once it is drained).
                self._eof = True
                if self._wbuf:
                    self._update()
                else:
                    self._close(None)
                return
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self._close(None)
            return
        if data:
            try:
                self._handler.data_received(data)
            except FatalError:
                raise
            except Exception as exc:
                self.abort(exc)  # what it wrote so far is sent first
            return
        self._eof = True
        self._update()
        try:
            self._handler.eof_received()
        except FatalError:
            raise
        except Exception as exc:
            self.abort(exc)

    def _flush(self) -> None:
        """Send the buffer (the FlushQueue calls this once the turn's events
        are handled); keep the unsent tail for EVENT_WRITE; after ``finish``,
        queue the FIN for once everything is out."""
        if not self._queued:  # closed since it was queued
            return
        self._queued = False
        wbuf = self._wbuf
        if wbuf:
            try:
                sent = self._sock.send(wbuf)
            except AGAIN:
                sent = 0
            except OSError as exc:
                self._close(exc)
                return
            del wbuf[:sent]
            if wbuf:
                if self._max_output is not None and len(wbuf) > self._max_output:
                    self._close(self._overflow())
                    return
                self._blocked = True
                self._update()
                return
            # (With nothing to send, finish() sent the FIN itself.)
            if self._finishing:
                self._flushes._unfinished.append(self)  # FIN once every transport had its send

    def _send_fin(self) -> None:
        """The FIN after ``_flush``, once every transport was flushed."""
        if not self._closed:  # nothing can be written after finish()
            self._shutdown_write()

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._wbuf)
        except AGAIN:
            return
        except OSError as exc:
            self._close(exc)
            return
        del self._wbuf[:sent]
        if self._wbuf:
            return
        self._blocked = False
        if self._finishing:
            self._shutdown_write()
        else:
            self._update()

    def _shutdown_write(self) -> None:
        """Everything is flushed: send FIN, then linger for the peer's."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(None)
            return
        if self._eof:
            self._close(None)
            return
        self._update()
        if self._linger is None:  # flushing and draining share one deadline
            self._linger = self._loop.call_later(LINGER_SECONDS, self._linger_over)

    def _linger_over(self) -> None:
        """Flushing or draining took too long: close (an orderly end for the
        handler, which let go of this connection when it called ``finish``)."""
        self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        """Close the socket now; deliver ``connection_lost(exc)`` on a
        deferred call."""
        if self._closed:
            return
        self._closed = True
        self._queued = False
        if self._linger is not None:
            self._linger.cancel()
        if self._mask:  # unregister before close
            self._loop.update_watch(self._fd, self._mask, 0, self._on_readable)
            self._mask = 0
        self._sock.close()
        self._exc = exc
        self._loop.call_soon(self._connection_lost)

    def _connection_lost(self) -> None:
        handler = self._handler
        del self._handler  # no cycle left between it and this transport
        handler.connection_lost(self._exc)
