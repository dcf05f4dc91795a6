"""The event loop: one thread, one ``selectors`` selector, timers, signals.

The loop knows descriptors, callbacks and time, nothing of what the bytes
mean or who writes them. What must happen once a turn's events are handled
(sending what the turn wrote, in transport.py) registers itself as a
before-sleep hook, as redis's ``aeSetBeforeSleepProc`` does.

Every callback the loop runs belongs to code that serves everyone: an
exception escaping one becomes a ``FatalError`` that stops ``run()``. Code
serving one connection (a transport) contains its own failures.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: Cancelled timers are purged from the heap once there are more than this
#: many and they are more than half of it.
PURGE_MIN = 64

#: The shortest polling window worth having (see PollWindow); below it, none.
POLL_MIN = 10e-6

#: The errors of a non-blocking call that mean "not now": try again once the
#: selector says the descriptor is ready. Every other OSError is real.
AGAIN = (BlockingIOError, InterruptedError)


class FatalError(Exception):
    """The program itself cannot go on: ``Loop.run()`` raises it.

    Raised for any exception that escapes a loop callback, and by code that
    finds its own state in doubt (the auction machine failing).
    """

    @classmethod
    def caused_by(cls, exc: BaseException) -> FatalError:
        """Return a FatalError naming ``exc`` (raise it ``from exc``)."""
        return cls(f"{type(exc).__name__}: {exc}")


# --- timers ----------------------------------------------------------------------


class Timer:
    """A callback due at a monotonic time; ``cancel()`` drops it."""

    __slots__ = ("callback", "cancelled", "_loop")

    def __init__(self, callback: Callable[[], None], loop: Loop) -> None:
        self.callback = callback
        self.cancelled = False
        self._loop: Loop | None = loop  #: the loop whose heap holds it; None once out of it

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
    through the hypervisor (docs/PERFORMANCE.md, second round, has the
    figures). When the next event tends to come within microseconds
    (a client answering a prompt), asking the selector with a zero timeout
    for a while catches it without that wake-up.

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


# --- the loop --------------------------------------------------------------------


class Loop:
    """A selector loop with timers, deferred calls, before-sleep hooks and
    signal delivery.

    One turn: run the before-sleep hooks; wait for descriptor events (not at
    all if deferred calls are queued, else until the next timer); call each
    ready descriptor's callback; run the deferred calls queued so far; run
    the timers that are due.
    """

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
        self._before_sleep: list[Callable[[], None]] = []
        self._stopping = False
        self._signal_sockets: tuple[socket.socket, socket.socket] | None = None
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._cancelled = 0  # cancelled timers still in the heap

    # -- time and calls ---------------------------------------------------------

    #: The loop's clock: monotonic seconds (the C function itself, as it is
    #: read for every event).
    time = staticmethod(time.monotonic)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` at monotonic time ``when``; return its Timer."""
        timer = Timer(callback, self)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` after ``delay`` seconds; return its Timer."""
        return self.call_at(time.monotonic() + delay, callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` soon: after the descriptor events of this turn
        (or of the next, if queued by another deferred call).

        Used to report something to a caller without re-entering the code
        that caused it (a transport's ``connection_lost``).
        """
        self._ready.append(callback)

    def add_before_sleep(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once per turn, before the loop waits for
        events (and once more before ``run()`` returns), in the order added.

        What a turn wrote goes out there, so that everything one turn wrote
        to a connection leaves in one send (redis's ``beforeSleep``).
        """
        self._before_sleep.append(callback)

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

    # -- file descriptors -------------------------------------------------------

    def watch(self, fileobj: Any, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(mask)`` whenever ``fileobj`` (a descriptor or an
        object with ``fileno()``) is ready for ``events`` (EVENT_READ,
        EVENT_WRITE or both). Raises KeyError if it is watched already."""
        self._selector.register(fileobj, events, callback)

    def unwatch(self, fileobj: Any) -> None:
        """Stop watching ``fileobj`` (nothing if it was not watched)."""
        try:
            self._selector.unregister(fileobj)
        except KeyError:
            pass

    def update_watch(
        self, fd: int, old: int, new: int, callback: Callable[[int], None]
    ) -> None:
        """Change what ``fd`` is watched for from ``old`` to ``new`` events
        (0: not watched), with ``callback`` for the new ones.

        For callers that track their own mask (a transport): no lookup of the
        current registration, whose miss costs a KeyError that formats the
        socket's repr (a large share of a connection storm's profile:
        docs/PERFORMANCE.md, first round).
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
        except AGAIN:
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

        Raises FatalError when a callback (a descriptor's, a deferred call,
        a timer, a before-sleep hook) raises; that exception is its
        ``__cause__``. The deferred calls and timers not run yet stay queued
        for the next ``run()``.
        """
        self._stopping = False
        select = self._selector.select
        timers = self._timers
        ready = self._ready
        hooks = self._before_sleep
        poll = self.poll
        while True:
            # Before sleeping, and before returning: what the last turn wrote
            # is not left behind by stop().
            for hook in hooks:
                try:
                    hook()
                except FatalError:
                    raise
                except Exception as exc:
                    raise FatalError.caused_by(exc) from exc
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
                try:  # as _call does; written out here, the loop's hottest line
                    key.data(mask)
                except FatalError:
                    raise
                except Exception as exc:
                    raise FatalError.caused_by(exc) from exc
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

    @staticmethod
    def _call(callback: Callable[[], None]) -> None:
        try:
            callback()
        except FatalError:
            raise
        except Exception as exc:
            raise FatalError.caused_by(exc) from exc

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
