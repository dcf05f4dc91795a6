#!/usr/bin/env python3
"""Benchmark baseline: the auction server with a thread per connection.

    python3 bench/baselines/threaded_server.py PORT [auc_server's options]

The classic shape: an accepting thread, one thread per connection blocked in
``recv()`` on a blocking socket, and one lock around the project's sans-IO
auction machine (common.Shell), framed by the project's LineBuffer. Writes
happen under the lock with ``MSG_DONTWAIT``; only when a peer's kernel buffer
is full does a helper thread block to flush the rest, so one slow reader never
holds the lock (and more than 64 KiB unread counts as a departure, as in
auc_server). One timer thread runs the auction deadline and the 2 s lingers.
The main thread only waits for SIGINT/SIGTERM. No ledger is kept (see common.py).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.common import (  # noqa: E402
    BACKLOG,
    LINGER_BYTES,
    LINGER_SECONDS,
    SHUTDOWN_GRACE,
    Options,
    Shell,
    parse_options,
)
from reactor_auction.events import (  # noqa: E402
    Connected,
    InputEnded,
    LineReceived,
    LineTooLong,
)
from reactor_auction.framing import LineBuffer  # noqa: E402
from reactor_auction.framing import LineTooLong as FramingTooLong  # noqa: E402
from reactor_auction.net import format_peer  # noqa: E402
from reactor_auction.transport import READ_SIZE  # noqa: E402

#: accept() errors that mean "out of descriptors or memory": pause, then retry.
_ACCEPT_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Scheduler:
    """One thread that runs callbacks at monotonic times."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="timers", daemon=True).start()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` (in the timer thread) at ``when``."""
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), callback))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, callback = heapq.heappop(self._heap)
            callback()


class ThreadedServer:
    """Listener, connection threads and the lock around the machine."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)  # notified when a connection goes
        self.timers = Scheduler()
        self.shell = Shell(options.auction(), options.log, self._arm)
        self._deadline_seq = 0
        self._listener: socket.socket | None = None

    # -- the deadline (called under the lock) -------------------------------------

    def _arm(self, when: float | None) -> None:
        self._deadline_seq += 1  # any earlier arming is now stale
        if when is not None:
            seq = self._deadline_seq
            self.timers.call_at(when, lambda: self._on_deadline(seq))

    def _on_deadline(self, seq: int) -> None:
        with self.lock:
            if seq == self._deadline_seq:
                self.shell.on_deadline()

    # -- serving --------------------------------------------------------------------

    def listen(self) -> socket.socket:
        """Open the port as auc_server does. Raises OSError."""
        host = self.options.host
        if host in ("", "::") and socket.has_dualstack_ipv6():
            sock = socket.create_server(("::", self.options.port), family=socket.AF_INET6,
                                        backlog=BACKLOG, dualstack_ipv6=True)
        else:
            sock = socket.create_server((host, self.options.port), backlog=BACKLOG)
        self._listener = sock
        return sock

    def accept_forever(self, listener: socket.socket) -> None:
        """Accept until the listener is shut down; a thread per connection."""
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_EXHAUSTED:
                    time.sleep(0.1)  # as auc_server: pause, leave them in the backlog
                    continue
                if exc.errno == errno.ECONNABORTED:
                    continue
                return  # the listener was shut down
            link = _ThreadLink(self, sock)
            with self.lock:
                conn = self.shell.add(link)
                self.shell.feed(Connected(conn, format_peer(sock)))
            try:
                threading.Thread(target=link.run, args=(conn,), daemon=True).start()
            except RuntimeError:  # no thread to be had: this connection departs
                with self.lock:
                    link.failed = True
                    sock.close()
                    self.shell.lost(conn)

    def stop_listening(self) -> None:
        """Wake the accepting thread and close the port (under the lock)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
            except OSError:
                pass
            listener.close()

    def serve(self) -> int:
        """Listen, serve until SIGINT/SIGTERM, shut down; return the exit status."""
        options = self.options
        try:
            listener = self.listen()
        except OSError as exc:
            print(f"threaded_server.py: cannot listen on port {options.port}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 4
        options.listening(listener.getsockname()[1])
        threading.Thread(target=self.accept_forever, args=(listener,), name="accept",
                         daemon=True).start()
        signal.sigwait(_SIGNALS)
        with self.lock:
            self.stop_listening()
            self.shell.shutdown()
            end = time.monotonic() + SHUTDOWN_GRACE
            while self.shell.links and (left := end - time.monotonic()) > 0:
                self.idle.wait(min(left, 0.05))
                if signal.sigtimedwait(_SIGNALS, 0) is not None:
                    break  # a second signal stops at once
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class _ThreadLink:
    """One connection: its thread reads; anyone holding the lock writes.

    The connection's own thread is the only one that closes the socket; the
    others wake it with ``shutdown()`` when it must.
    """

    __slots__ = ("server", "sock", "detached", "eof", "tail", "flushing", "finishing",
                 "failed", "done", "discarded")

    def __init__(self, server: ThreadedServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.detached = False
        self.eof = False
        self.tail = bytearray()  # output the kernel would not take yet
        self.flushing = False
        self.finishing = False
        self.failed = False
        self.done = threading.Event()  # after EOF: the thread waits on this to close
        self.discarded = 0

    # -- called under the lock ------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send without blocking; a full kernel buffer hands the rest to a flusher."""
        if self.failed or self.finishing:
            return
        if not self.tail:
            try:
                sent = self.sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._fail()
                return
            if sent == len(data):
                return
            data = data[sent:]
        self.tail += data
        if len(self.tail) > self.server.options.max_output:
            self._fail(reset=True)
        elif not self.flushing:
            self.flushing = True
            threading.Thread(target=self._flush, daemon=True).start()

    def finish(self) -> None:
        """Flush, FIN, linger for the peer's FIN, close."""
        if self.failed or self.finishing:
            return
        self.finishing = True
        if not self.tail:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._wake()
            return
        if self.eof:
            self._wake()
        else:
            self.server.timers.call_at(time.monotonic() + LINGER_SECONDS, self._linger_over)

    def _fail(self, *, reset: bool = False) -> None:
        """A departure: the thread wakes, closes, reports."""
        self.failed = True
        self.tail.clear()
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._wake()

    def _wake(self) -> None:
        """Make the connection's thread close the socket."""
        self.done.set()
        try:
            self.sock.shutdown(socket.SHUT_RD)  # a blocked recv() returns b""
        except OSError:
            pass

    # -- other threads -----------------------------------------------------------------

    def _linger_over(self) -> None:
        with self.server.lock:
            self._wake()

    def _flush(self) -> None:
        """Block on the rest of the output, outside the lock."""
        lock = self.server.lock
        while True:
            with lock:
                if self.failed or not self.tail:
                    self.flushing = False
                    if self.finishing and not self.failed:
                        self._shutdown_write()
                    return
                chunk = bytes(self.tail)
            try:
                sent = self.sock.send(chunk)
            except OSError:
                with lock:
                    self.flushing = False
                    self._fail()
                return
            with lock:
                del self.tail[:sent]

    def run(self, conn: int) -> None:
        """The connection's thread: read, frame, feed; close; report."""
        server = self.server
        shell = server.shell
        lock = server.lock
        lines = LineBuffer()
        try:
            while True:
                data = self.sock.recv(READ_SIZE)
                with lock:
                    if self.failed:
                        break
                    if self.detached:  # lingering after the final line: discard
                        self.discarded += len(data)
                        if not data or self.done.is_set() or self.discarded > LINGER_BYTES:
                            break
                        continue
                    if not data:
                        self.eof = True
                        shell.feed(InputEnded(conn))
                        break
                    lines.feed(data)
                    try:
                        while not self.detached and (line := lines.next_line()) is not None:
                            shell.feed(LineReceived(conn, line))
                    except FramingTooLong:
                        shell.feed(LineTooLong(conn))
            if self.eof:
                self.done.wait()  # half-closed: it may still get its result
        except OSError:
            pass  # reset: a departure, reported below
        finally:
            with lock:
                self.failed = True  # no more writes
                self.sock.close()
                shell.lost(conn)
                server.idle.notify_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status."""
    # Signals are taken by sigwait in the main thread only: block them before
    # any other thread exists, so every thread inherits the blocked mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    return ThreadedServer(parse_options("threaded_server.py", "a thread per connection",
                                        argv)).serve()


if __name__ == "__main__":
    sys.exit(main())
