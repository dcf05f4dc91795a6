"""The reactor: one thread, one ``selectors`` loop, non-blocking sockets.

This is the only module that touches sockets, file descriptors, the selector,
the clock and signals. It knows nothing of auctions: it moves bytes between
sockets and handlers, fires timers and delivers signals.

The write path follows redis's ``ae.c``/``networking.c`` and asyncio's
``selector_events.py``: what a turn of the loop writes is sent at once when
the turn's events are handled, before the loop sleeps again (redis's
``handleClientsWithPendingWrites`` in ``beforeSleep``), so a reply and a
result produced in the same turn leave in one send; keep only the unsent
tail; watch ``EVENT_WRITE`` only while such a tail is waiting; treat only
``BlockingIOError``/``InterruptedError`` as "later"; unregister before close;
close exactly once; an error on one connection closes that connection only.
"""

from __future__ import annotations

import errno
import functools
import heapq
import itertools
import os
import selectors
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

#: What one recv() asks for.
READ_SIZE = 65536
#: After a final line: how long to drain and discard the peer's input before
#: closing, so that a peer with unread junk in flight still gets the line
#: instead of a reset.
LINGER_SECONDS = 2.0
#: ...and how much of it to discard before giving up and closing anyway.
LINGER_BYTES = 256 * 1024
#: Cancelled timers are purged from the heap once there are more than this
#: many and they are more than half of it.
PURGE_MIN = 64

#: The shortest polling window worth having (see PollWindow); below it, none.
POLL_MIN = 10e-6

_AGAIN = (BlockingIOError, InterruptedError)


class FatalError(Exception):
    """Raised by a callback when the program itself cannot go on.

    Every other exception in a callback is contained: it closes the connection
    whose event raised it, and the loop goes on.
    """


class OutputOverflow(ConnectionError):
    """A peer let more than the cap of unsent output pile up."""


# --- timers ----------------------------------------------------------------------


class Timer:
    """A callback due at a monotonic time; ``cancel()`` drops it."""

    __slots__ = ("callback", "cancelled", "_loop")

    def __init__(self, callback: Callable[[], None], loop: Loop | None = None) -> None:
        self.callback = callback
        self.cancelled = False
        self._loop = loop  #: the loop whose heap holds it; None once out of it

    def cancel(self) -> None:
        """Do not run the callback. It stays in the loop's heap, unseen,
        until due or until the loop purges cancelled timers."""
        if not self.cancelled:
            self.cancelled = True
            if self._loop is not None:
                self._loop._timer_cancelled()


class PollWindow:
    """How long a loop polls for the next event before it sleeps.

    On a virtual machine, waking a process that sleeps in the selector costs
    far more than the wait itself: its idle vCPU halts, and the wake-up goes
    through the hypervisor. On the 2-core VM of docs/PERFORMANCE.md a
    one-byte ping-pong between two processes takes 85 µs per round trip
    across cores and 18 µs on one core. When the next event tends to come
    within microseconds (a client answering a prompt), asking the selector
    with a zero timeout for a while catches it without that wake-up.

    The window adapts as KVM's own halt polling (halt_poll_ns) does: a sleep
    that an event ended within ``maximum`` doubles it (polling longer would
    have caught that event); any longer sleep halves it, down to none. A loop
    whose events are far apart therefore sleeps at once and spends no CPU
    polling, and a poll costs at most ``maximum`` per wait.
    """

    __slots__ = ("maximum", "current")

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum  #: seconds; 0 never polls
        self.current = 0.0  #: seconds to poll before the next sleep

    def slept(self, seconds: float, woken: bool) -> None:
        """Adapt to a sleep of ``seconds`` that an event ended (``woken``)
        or the timeout did."""
        if woken and seconds < self.maximum:
            self.current = min(self.maximum, max(2 * self.current, POLL_MIN))
        elif self.current >= 2 * POLL_MIN:
            self.current /= 2
        else:
            self.current = 0.0


class Loop:
    """A selector loop with timers, deferred calls and signal delivery."""

    def __init__(self, *, poll_max: float = 0.0) -> None:
        """``poll_max`` > 0 (seconds) lets the loop poll for events before it
        sleeps, within a window that adapts to how soon they come (see
        PollWindow); 0 sleeps at once."""
        self.poll = PollWindow(poll_max)
        self._selector = selectors.DefaultSelector()
        # Heap entries are (when, sequence, timer): tuples compare in C, and
        # the sequence keeps timers due at the same time in order.
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._ready: deque[Callable[[], None]] = deque()
        self._stopping = False
        self._signal_sockets: tuple[socket.socket, socket.socket] | None = None
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._cancelled = 0  # cancelled timers still in the heap
        # Streams written to since the loop last flushed (in the order of
        # their first write), and streams whose FIN waits for the flush of
        # all of those; see Stream.write and _flush_writes.
        self._unflushed: list[Stream] = []
        self._unfinished: list[Stream] = []

    # -- time and calls ---------------------------------------------------------

    #: The loop's clock: monotonic seconds (the C function itself, as it is
    #: read for every event).
    time = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at monotonic time ``when``; return its Timer."""
        timer = Timer(callback, self)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def _timer_cancelled(self) -> None:
        """Count a cancelled timer; purge them once they are most of the heap.

        A seller that connects and leaves at once leaves behind a cancelled
        request deadline due minutes later: without the purge (asyncio has
        the same), churning connections would grow the heap without bound.
        """
        self._cancelled += 1
        timers = self._timers
        if self._cancelled > PURGE_MIN and self._cancelled * 2 > len(timers):
            # In place: run() may be popping from this very list.
            timers[:] = [entry for entry in timers if not entry[2].cancelled]
            heapq.heapify(timers)
            self._cancelled = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` after ``delay`` seconds; return its Timer."""
        return self.call_at(time.monotonic() + delay, callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` soon: after the descriptor events of this turn
        (or of the next, if queued by another deferred call).

        Used to report a failed write to its handler without re-entering the
        code that was writing.
        """
        self._ready.append(callback)

    # -- file descriptors -------------------------------------------------------

    def watch(self, fileobj: Any, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(mask)`` when ``fileobj`` is ready; events 0 unwatches
        (nothing if it was not watched)."""
        if events:
            self._selector.register(fileobj, events, callback)
        else:
            try:
                self._selector.unregister(fileobj)
            except KeyError:
                pass

    def rewatch(self, fd: int, old: int, new: int, callback: Callable[[int], None]) -> None:
        """Change what ``fd`` is watched for from ``old`` to ``new`` events.

        For callers that track their own mask (Stream): no lookup of the
        current registration, whose miss would cost a KeyError that formats
        the socket's repr (seen as 20 % of a connection storm's profile).
        """
        if not old:
            self._selector.register(fd, new, callback)
        elif not new:
            self._selector.unregister(fd)
        else:
            self._selector.modify(fd, new, callback)

    # -- signals ----------------------------------------------------------------

    def add_signal_handler(self, signum: int, handler: Callable[[int], None]) -> None:
        """Call ``handler(signum)`` from the loop when the signal arrives.

        The C-level handler writes the signal number to a socket watched by
        the selector (``signal.set_wakeup_fd``), so the loop wakes at once
        instead of at its next timeout.
        """
        if self._signal_sockets is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            self._signal_sockets = (reader, writer)
            self.watch(reader, selectors.EVENT_READ, self._read_signals)
        self._signal_handlers[signum] = handler
        signal.signal(signum, _ignore_signal)

    def _read_signals(self, mask: int) -> None:
        assert self._signal_sockets is not None
        try:
            data = self._signal_sockets[0].recv(4096)
        except _AGAIN:
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                handler(signum)

    # -- running ----------------------------------------------------------------

    def stop(self) -> None:
        """Make ``run()`` return after the current turn."""
        self._stopping = True

    def run(self) -> None:
        """Run until ``stop()``.

        An exception from a callback that belongs to a Stream (a descriptor
        event, a deferred call or a timer) closes that stream, which reports
        it to its handler, and the loop goes on. ``FatalError`` propagates;
        so does any other exception, wrapped in FatalError, because it comes
        from code that serves everyone (see ``_contain``).
        """
        self._stopping = False
        select = self._selector.select
        timers = self._timers
        ready = self._ready
        poll = self.poll
        while True:
            # What the last turn wrote goes out now, before sleeping (and
            # before returning: nothing written is left behind by stop()).
            if self._unflushed or self._unfinished:
                self._flush_writes()
            if self._stopping:
                break
            if ready:
                timeout: float | None = 0
            elif timers:
                timeout = max(0.0, timers[0][0] - time.monotonic())
            else:
                timeout = None
            events = select(timeout) if timeout == 0 or not poll.maximum else self._wait(timeout)
            for key, mask in events:
                callback = key.data
                try:  # as _call does; written out here, the loop's hottest line
                    callback(mask)
                except FatalError:
                    raise
                except Exception as exc:
                    _contain(callback, exc)
            # Only the calls queued so far: one queued by a call runs on the
            # next turn, after the descriptors had theirs (see call_soon).
            for _ in range(len(ready)):
                self._call(ready.popleft())
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    timer._loop = None
                    if timer.cancelled:
                        self._cancelled -= 1
                    else:
                        self._call(timer.callback)

    def _wait(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """Return the selector's events: poll for ``self.poll.current``
        seconds first, then sleep for what is left of ``timeout``."""
        select = self._selector.select
        start = time.monotonic()
        window = self.poll.current
        if window:
            if timeout is not None and timeout < window:
                window = timeout
            end = start + window
            while True:
                events = select(0)
                now = time.monotonic()
                if events:
                    return events
                if now >= end:
                    break
            if timeout is not None:
                timeout = max(0.0, timeout - (now - start))
            start = now
        events = select(timeout)
        self.poll.slept(time.monotonic() - start, bool(events))
        return events

    def _flush_writes(self) -> None:
        """Send what every stream wrote since the last flush.

        The streams flushed together send all their data before any of them
        sends its FIN: when a turn ends an auction, the last result is not held
        up behind the other clients' shutdowns. Flushing can close a stream (a
        send error), whose handler may write to others: those are flushed in
        the same call, so the loop never sleeps with output it could have
        sent. A FatalError leaves the streams not yet flushed queued, for
        whatever runs the loop next (``AuctionService.abort_all``).
        """
        while self._unflushed or self._unfinished:
            while self._unflushed:
                streams, self._unflushed = self._unflushed, []
                self._each(streams, Stream._flush, self._unflushed)
            streams, self._unfinished = self._unfinished, []
            self._each(streams, Stream._flushed_and_finished, self._unfinished)

    @staticmethod
    def _each(
        streams: list[Stream], method: Callable[[Stream], None], pending: list[Stream]
    ) -> None:
        """Call ``method`` on each stream, an error closing that stream only
        (as ``_call`` does). On FatalError the streams not reached go back to
        the front of ``pending``, still to be flushed."""
        for index, stream in enumerate(streams):
            try:
                method(stream)
            except FatalError:
                pending[:0] = streams[index + 1:]
                raise
            except Exception as exc:
                _contain(method.__get__(stream), exc)

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except FatalError:
            raise
        except Exception as exc:
            _contain(callback, exc)

    def close(self) -> None:
        """Release the selector and the signal sockets."""
        if self._signal_sockets is not None:
            signal.set_wakeup_fd(-1)
            for sock in self._signal_sockets:
                sock.close()
            self._signal_sockets = None
        self._selector.close()


def _ignore_signal(signum: int, frame: object) -> None:
    """The Python-level handler: the work happens in the loop."""


def _owner(callback: Callable[..., None]) -> object:
    """Return the object a callback is a bound method of (through partial)."""
    while isinstance(callback, functools.partial):
        callback = callback.func
    return getattr(callback, "__self__", None)


def _contain(callback: Callable[..., None], exc: Exception) -> None:
    """Deal with ``exc`` raised by a loop callback.

    A Stream's callback: close that stream with ``exc`` (its handler's
    ``connection_lost`` logs it), and the loop goes on. Raises FatalError
    when the exception came from code serving everyone (the listener, the
    signal reader, a service timer) or from a stream's close handler itself:
    the program's own state is then in doubt.
    """
    owner = _owner(callback)
    if isinstance(owner, Stream) and not owner.closed:
        try:
            owner.abort(exc)
        except FatalError:
            raise
        except Exception as again:  # the close handler itself failed
            raise FatalError(f"{type(again).__name__}: {again}") from again
        return
    raise FatalError(f"{type(exc).__name__}: {exc}") from exc


# --- streams ----------------------------------------------------------------------


class StreamHandler(Protocol):
    """What a Stream reports to."""

    def data_received(self, stream: Stream, data: bytes) -> None: ...

    def eof_received(self, stream: Stream) -> None: ...

    def connection_lost(self, stream: Stream, exc: BaseException | None) -> None:
        """Called exactly once, when the socket is closed for any reason.

        ``exc`` is None for an orderly close after ``finish()``.
        """


class Stream:
    """A non-blocking socket with a write buffer.

    Reads go to the handler as they arrive. ``write`` appends to the buffer,
    which the loop sends once the current turn's events are handled; only the
    unsent tail stays, watched with ``EVENT_WRITE`` until it drains.
    ``finish`` closes gracefully after the last byte; ``abort`` closes now.
    """

    __slots__ = (
        "tag", "_loop", "_sock", "_fd", "_handler", "_wbuf", "_max_output", "_reading",
        "_eof", "_finishing", "_closed", "_mask", "_linger", "_discarded", "peer",
        "_queued", "_blocked",
    )

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        handler: StreamHandler,
        *,
        tag: int = 0,
        max_output: int | None = None,
        peer: str | None = None,
    ) -> None:
        """Take over ``sock``. ``max_output`` caps unsent output: exceeding it
        closes the stream as lost. ``peer`` is the peer's ``ip:port`` if the
        caller knows it (from accept), sparing a getpeername call."""
        self.tag = tag  #: the owner's name for this connection
        self._loop = loop
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
        self._queued = False  # in the loop's list of streams to flush
        self._blocked = False  # a flush left a tail: EVENT_WRITE sends the rest
        self.peer = format_peer(sock) if peer is None else peer
        sock.setblocking(False)
        self._update()

    @property
    def closed(self) -> bool:
        """True once the socket is closed."""
        return self._closed

    @property
    def closing(self) -> bool:
        """True once ``finish``/``abort`` began or a write failed: nothing
        more will be written, so input need not be handled any more."""
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

    def defer(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` soon (see ``Loop.call_soon``) as an event of this
        stream: an exception from it closes this stream, as one from the
        handler's own callbacks does. Not run if the stream is closed by then.
        """
        self._loop.call_soon(functools.partial(self._run_deferred, callback))

    def _run_deferred(self, callback: Callable[[], None]) -> None:
        if not self._closed:
            callback()

    def write(self, data: bytes) -> None:
        """Queue ``data``; the loop sends it when this turn's events are
        handled, together with anything else written to this stream meanwhile.

        Ignored after ``finish``/close. ``max_output`` caps what the peer
        leaves unread: output the kernel refused (waiting for EVENT_WRITE)
        plus what is written after it. Going over closes the stream, reported
        to the handler on the next turn of the loop, never from inside this
        call.
        """
        if self._closed or self._finishing:
            return
        self._wbuf += data
        if self._blocked:
            if self._max_output is not None and len(self._wbuf) > self._max_output:
                self._fail_later(self._overflow())
        elif not self._queued:
            self._queued = True
            self._loop._unflushed.append(self)

    def _overflow(self) -> OutputOverflow:
        """Return the error that closes a stream whose peer left too much unread."""
        return OutputOverflow(f"more than {self._max_output} bytes unread")

    def finish(self) -> None:
        """Flush what was written, shut down the write side, drain input
        briefly (discarding it), then close.

        May close at once, and so call the handler's ``connection_lost``
        before returning (nothing left to flush and the peer's EOF already
        seen): a caller must treat the stream as let go of before calling.
        """
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
            # gets LINGER_SECONDS too.
            self._linger = self._loop.call_later(LINGER_SECONDS, self._linger_over)
            self._update()

    def abort(self, exc: BaseException | None = None, *, reset: bool = False) -> None:
        """Close now; ``reset`` sends a TCP RST, which tells the peer
        unmistakably that this side left. Output still buffered is sent first
        if the kernel takes it at once (as it would have been had it been
        written before this turn); whatever it does not take is dropped.
        Calls the handler's ``connection_lost`` before returning."""
        if self._closed:
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
            mask |= selectors.EVENT_READ
        if self._blocked:
            mask |= selectors.EVENT_WRITE
        if mask != self._mask:
            # Reading only (nearly always): the loop calls _on_readable itself.
            callback = self._on_event if mask & selectors.EVENT_WRITE else self._on_readable
            self._loop.rewatch(self._fd, self._mask, mask, callback)
            self._mask = mask

    def _on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._on_writable()
        if mask & selectors.EVENT_READ and not self._closed:
            self._on_readable()

    def _on_readable(self, mask: int = selectors.EVENT_READ) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except _AGAIN:
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
        if not data:
            self._eof = True
            self._update()
            self._handler.eof_received(self)
            return
        self._handler.data_received(self, data)

    def _flush(self) -> None:
        """Send the buffer (the loop calls this once the turn's events are
        handled); keep the unsent tail for EVENT_WRITE; after ``finish``, send
        the FIN once everything is out."""
        if not self._queued:  # closed or failed since it was queued
            return
        self._queued = False
        wbuf = self._wbuf
        if wbuf:
            try:
                sent = self._sock.send(wbuf)
            except _AGAIN:
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
                self._loop._unfinished.append(self)  # FIN once every stream had its send

    def _flushed_and_finished(self) -> None:
        """The FIN after ``_flush``, once the loop flushed every stream."""
        if not self._closed:  # nothing can be written after finish()
            self._shutdown_write()

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._wbuf)
        except _AGAIN:
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
        handler, which let go of this stream when it called ``finish``)."""
        self._close(None)

    def _fail_later(self, exc: BaseException) -> None:
        """Stop writing now; close and report on the next turn (see ``write``)."""
        self._wbuf.clear()
        self._queued = self._blocked = False  # no flush, no FIN: this ends in a close
        self._finishing = True  # no more writes meanwhile
        self._update()  # nor a stale EVENT_WRITE this turn
        self._loop.call_soon(functools.partial(self._close, exc))

    def _close(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._queued = False
        if self._linger is not None:
            self._linger.cancel()
        if self._mask:  # unregister before close
            self._loop.rewatch(self._fd, self._mask, 0, self._on_readable)
            self._mask = 0
        self._sock.close()
        self._handler.connection_lost(self, exc)


def format_peer(sock: socket.socket) -> str:
    """Return ``ip:port`` of the peer (an IPv4-mapped IPv6 address shown as IPv4)."""
    try:
        address = sock.getpeername()
    except OSError:
        return "?"
    return format_address(address)


def format_address(address: Any) -> str:
    """Return ``ip:port`` for a socket address as accept() or getpeername()
    give it (an IPv4-mapped IPv6 address shown as IPv4)."""
    if not isinstance(address, tuple):  # a Unix socket (tests use socketpair)
        return str(address) or "?"
    host = str(address[0])
    if host.startswith("::ffff:"):
        host = host[7:]
    elif ":" in host:
        host = f"[{host}]"
    return f"{host}:{address[1]}"


# --- listening --------------------------------------------------------------------

#: accept() errors that mean "out of descriptors or memory": pause, then retry.
_ACCEPT_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ListenError(OSError):
    """The port could not be opened."""


class Listener:
    """A listening socket that hands each new connection to
    ``on_accept(sock, address)``.

    At most ``max_per_wake`` connections are accepted per wake-up, so a
    connection storm cannot starve the connections already being served. When
    descriptors run out, the listener stops watching for ``pause`` seconds
    (as asyncio and nginx do) instead of spinning on a ready socket it cannot
    serve; connections wait in the kernel's backlog meanwhile.
    """

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        on_accept: Callable[[socket.socket, Any], None],
        *,
        backlog: int = 4096,
        max_per_wake: int = 128,
        pause: float = 0.1,
        on_exhausted: Callable[[OSError], None] | None = None,
        send_buffer: int | None = None,
    ) -> None:
        """Listen on ``host``:``port``. Raises ListenError.

        ``send_buffer`` caps the kernel's send buffer of every accepted
        socket, which Linux would otherwise grow to megabytes for a peer that
        does not read. Like TCP_NODELAY, it is set once on the listening
        socket, and accepted sockets inherit it (Linux): no system call per
        connection.
        """
        self._loop = loop
        self._on_accept = on_accept
        self._max_per_wake = max_per_wake
        self._pause = pause
        self._on_exhausted = on_exhausted
        self._paused: Timer | None = None
        self._exhausted = False  # reported, and no accept has succeeded since
        try:
            self._sock = _bind(host, port, backlog, send_buffer)
        except OSError as exc:
            raise ListenError(exc.errno, exc.strerror) from None
        self.port: int = self._sock.getsockname()[1]
        self._family = int(self._sock.family)
        self._kind = int(self._sock.type)
        loop.watch(self._sock, selectors.EVENT_READ, self._on_readable)

    def _on_readable(self, mask: int) -> None:
        # socket.accept() converts family and type to enums on every call
        # (a tenth of the server's time per connection in the rate
        # benchmark); the C call under it returns the bare descriptor, which
        # is wrapped with the listener's family and type taken once.
        accept = self._sock._accept  # type: ignore[attr-defined]
        family, kind = self._family, self._kind
        for _ in range(self._max_per_wake):
            try:
                fd, address = accept()
            except _AGAIN:
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                continue  # ECONNABORTED and friends: that client is gone
            self._exhausted = False
            try:
                sock = socket.socket(family, kind, 0, fd)
            except OSError:
                os.close(fd)
                continue
            self._on_accept(sock, address)

    def _pause_accepting(self, exc: OSError) -> None:
        # Reported once per shortage, not at every retry.
        if self._on_exhausted is not None and not self._exhausted:
            self._on_exhausted(exc)
        self._exhausted = True
        self._loop.watch(self._sock, 0, self._on_readable)
        self._paused = self._loop.call_later(self._pause, self._resume)

    def _resume(self) -> None:
        self._paused = None
        self._loop.watch(self._sock, selectors.EVENT_READ, self._on_readable)

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._sock.fileno() >= 0:
            self._loop.watch(self._sock, 0, self._on_readable)
            self._sock.close()


def _no_delay(sock: socket.socket) -> None:
    """Send each write at once: lines are small and each is a whole message,
    so waiting for the peer's delayed ACK (Nagle) only adds latency."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not TCP


def _bind(host: str, port: int, backlog: int, send_buffer: int | None) -> socket.socket:
    """Return a non-blocking listening socket with the options its accepted
    sockets inherit; "" means every interface, IPv6 too if possible.
    Raises OSError (the socket is closed then)."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        sock = socket.create_server(
            ("::", port), family=socket.AF_INET6, backlog=backlog, dualstack_ipv6=True
        )
    else:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.create_server(address[:2], family=family, backlog=backlog)
    try:
        sock.setblocking(False)
        _no_delay(sock)
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    except OSError:
        sock.close()
        raise
    return sock


# --- clients ----------------------------------------------------------------------


def connect(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """Return a connected non-blocking TCP socket.

    Connecting happens before the loop runs, so it may block (for DNS and the
    handshake) for up to ``timeout`` seconds. Raises OSError (socket.gaierror
    for an unknown host, ConnectionRefusedError, TimeoutError).
    """
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setblocking(False)
    _no_delay(sock)
    return sock


class FdReader:
    """Reads a file descriptor (standard input) from the loop, on demand.

    ``resume()`` starts watching, ``pause()`` stops: a scripted client reads
    nothing before a prompt asks for it.
    """

    def __init__(
        self,
        loop: Loop,
        fd: int,
        on_data: Callable[[bytes], None],
        on_eof: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._on_data = on_data
        self._on_eof = on_eof
        self._watching = False
        self.eof = False

    def resume(self) -> None:
        """Start watching (no-op after EOF)."""
        if not self._watching and not self.eof:
            self._watching = True
            self._loop.watch(self._fd, selectors.EVENT_READ, self._on_readable)

    def pause(self) -> None:
        """Stop watching."""
        if self._watching:
            self._watching = False
            self._loop.watch(self._fd, 0, self._on_readable)

    def stop(self) -> None:
        """Stop for good, as at the end of input."""
        self.pause()
        self.eof = True

    def _on_readable(self, mask: int) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except _AGAIN:
            return
        except OSError:
            data = b""
        if not data:
            self.stop()
            self._on_eof()
            return
        self._on_data(data)


class _FileReader(FdReader):
    """FdReader for input the selector cannot watch (a regular file,
    ``/dev/null``): reading it never blocks, so the reads run as deferred
    calls of the loop, one per turn, while resumed."""

    _scheduled = False

    def resume(self) -> None:
        """Read on the next turns of the loop until paused or at EOF."""
        if not self.eof:
            self._watching = True
            self._schedule()

    def pause(self) -> None:
        """Stop reading."""
        self._watching = False

    def _schedule(self) -> None:
        if self._watching and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._read)

    def _read(self) -> None:
        self._scheduled = False
        if self._watching:
            self._on_readable(0)  # FdReader's: read once, report data or EOF
            self._schedule()


def input_reader(
    loop: Loop, fd: int, on_data: Callable[[bytes], None], on_eof: Callable[[], None]
) -> FdReader:
    """Return a reader of ``fd`` (standard input) for ``loop``: watched by the
    selector where it can be (a terminal, a pipe), read on deferred calls
    where it cannot (epoll refuses a regular file or ``/dev/null``)."""
    with selectors.DefaultSelector() as probe:
        try:
            probe.register(fd, selectors.EVENT_READ)
        except (OSError, ValueError):
            return _FileReader(loop, fd, on_data, on_eof)
    return FdReader(loop, fd, on_data, on_eof)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) after.

    Returns the limits unchanged where they cannot be raised.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard
