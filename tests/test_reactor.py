"""Unit tests of the reactor's layers, over socket pairs and loopback
sockets, no server process: the loop (deferred calls, timers, before-sleep
hooks, polling), the socket transport and its flush queue, the listener."""

from __future__ import annotations

import gc
import selectors
import socket
import time
from collections.abc import Callable

import pytest

from reactor_auction import loop as loop_mod
from reactor_auction import transport as transport_mod
from reactor_auction.loop import FatalError, Loop, PollWindow
from reactor_auction.net import Listener
from reactor_auction.transport import FlushQueue, SocketTransport, Transport

WAIT = 10.0


class Recorder:
    """A Handler that remembers what happened."""

    def __init__(self) -> None:
        self.data = b""
        self.lost: list[BaseException | None] = []

    def connection_made(self, transport: Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> None:
        pass

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


class Echo(Recorder):
    """A Recorder that writes back what it receives."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


def transport_pair(
    flushes: FlushQueue, handler: Recorder
) -> tuple[SocketTransport, socket.socket]:
    """Return a transport over one end of a socket pair, and the other end
    (blocking, with the test's timeout)."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    return SocketTransport(flushes, ours, handler), theirs


def turn(loop: Loop) -> None:
    """Run the loop for one short turn (waiting at most 10 ms for events)."""
    loop.call_later(0.01, loop.stop)
    loop.run()


def run_until(loop: Loop, condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Run ``loop`` until ``condition`` holds (checked every 2 ms by a timer
    inside the loop); fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout

    def check() -> None:
        if condition() or time.monotonic() > deadline:
            loop.stop()
        else:
            loop.call_later(0.002, check)

    loop.call_soon(check)
    loop.run()
    assert condition(), "timed out"


# --- the loop ---------------------------------------------------------------------


def test_before_sleep_hooks_run_once_per_turn_before_the_loop_waits() -> None:
    """A hook runs at the start of every turn, before the loop waits for
    events or timers, and once more before run() returns."""
    loop = Loop()
    seen: list[str] = []
    loop.add_before_sleep(lambda: seen.append("hook"))

    def first() -> None:
        seen.append("first")
        loop.call_soon(second)

    def second() -> None:
        seen.append("second")
        loop.stop()

    loop.call_soon(first)
    loop.run()
    assert seen == ["hook", "first", "hook", "second", "hook"]
    seen.clear()
    loop.call_later(0.02, lambda: (seen.append("timer"), loop.stop()))
    loop.run()
    assert seen == ["hook", "timer", "hook"]  # the hook ran before the sleep
    loop.close()


def test_a_deferred_call_runs_after_the_descriptor_events_of_its_turn() -> None:
    """call_soon: after this turn's descriptor events; one queued by a
    deferred call waits for the next turn."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    seen: list[str] = []

    def readable(mask: int) -> None:
        seen.append("readable")
        loop.unwatch(ours)
        loop.unwatch(ours)  # not watched any more: nothing happens

    def first() -> None:
        seen.append("first")
        loop.call_soon(lambda: (seen.append("second"), loop.stop()))

    loop.watch(ours, selectors.EVENT_READ, readable)
    theirs.send(b"x")
    loop.call_soon(first)
    loop.run()
    assert seen == ["readable", "first", "second"]
    for sock in (ours, theirs):
        sock.close()
    loop.close()


@pytest.mark.parametrize("where", ["descriptor", "deferred", "timer", "before-sleep"])
def test_an_exception_escaping_a_loop_callback_is_fatal(where: str) -> None:
    """The loop's callbacks serve everyone: an exception from one stops the
    loop with FatalError (the exception as its cause), not a traceback."""
    loop = Loop()
    ours, theirs = socket.socketpair()

    def fail(*args: object) -> None:
        raise KeyError("bug serving everyone")

    if where == "descriptor":
        loop.watch(ours, selectors.EVENT_READ, fail)
        theirs.send(b"x")
    elif where == "deferred":
        loop.call_soon(fail)
    elif where == "timer":
        loop.call_later(0.001, fail)
    else:
        loop.add_before_sleep(fail)
    loop.call_later(WAIT, loop.stop)
    with pytest.raises(FatalError, match="KeyError") as raised:
        loop.run()
    assert isinstance(raised.value.__cause__, KeyError)
    for sock in (ours, theirs):
        sock.close()
    loop.close()


def test_cancelled_timers_do_not_pile_up() -> None:
    loop = Loop()
    keep = loop.call_later(600, lambda: None)
    for _ in range(10_000):
        loop.call_later(300, lambda: None).cancel()
    timers = sum(isinstance(obj, loop_mod.Timer) for obj in gc.get_objects())
    assert timers <= 2 * loop_mod.PURGE_MIN + 2
    assert not keep.cancelled
    loop.close()


# --- polling before sleeping --------------------------------------------------------


def test_poll_window_doubles_while_events_end_sleeps_early() -> None:
    """Each sleep an event ended within the maximum says polling longer
    would have caught it: the window doubles, from POLL_MIN up to the cap."""
    window = PollWindow(maximum=200e-6)
    seen = []
    for _ in range(7):
        window.slept(50e-6, woken=True)
        seen.append(round(window.current * 1e6))
    assert seen == [10, 20, 40, 80, 160, 200, 200]


def test_poll_window_halves_to_nothing_when_events_are_far_apart() -> None:
    window = PollWindow(maximum=200e-6)
    window.current = 200e-6
    seen = []
    for _ in range(6):
        window.slept(5.0, woken=True)  # an event, but long after
        seen.append(round(window.current * 1e6))
    assert seen == [100, 50, 25, 12, 0, 0]


def test_poll_window_shrinks_when_a_timer_ended_the_sleep() -> None:
    """A short sleep that no event ended (a timer was due) is no reason to poll."""
    window = PollWindow(maximum=200e-6)
    window.current = 40e-6
    window.slept(1e-6, woken=False)
    assert window.current == 20e-6


def test_poll_window_of_zero_never_polls() -> None:
    window = PollWindow(maximum=0.0)
    window.slept(0.0, woken=True)
    assert window.current == 0.0


def test_polling_loop_delivers_events_and_keeps_its_timers() -> None:
    """With a window open, the loop still hands over every byte and fires a
    timer due inside the window."""
    loop = Loop(poll_max=0.05)
    loop.poll.current = 0.05  # as after a run of quick events
    ours, theirs = socket.socketpair()
    handler = Recorder()
    SocketTransport(FlushQueue(loop), ours, handler)
    theirs.send(b"BID\n")
    run_until(loop, lambda: handler.data == b"BID\n")
    fired: list[bool] = []
    loop.poll.current = 0.05
    loop.call_later(0.001, lambda: fired.append(True))
    run_until(loop, lambda: bool(fired))
    assert loop.poll.current < 0.05  # no event came: the window shrank
    theirs.close()
    loop.close()


# --- the socket transport and its flush queue ---------------------------------------


def test_half_closed_peer_still_gets_the_whole_final_output() -> None:
    """A peer that sends FIN (nc -N) while its final line is still queued
    must receive all of it: end of input is not a reason to drop output."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    handler = Recorder()
    transport = SocketTransport(FlushQueue(loop), ours, handler)
    payload = b"x" * 200_000 + b"\nSOLD 150 WolfPackSword\n"
    transport.write(payload)
    assert transport.pending_output > 0  # the kernel took only part of it
    transport.finish()
    theirs.shutdown(socket.SHUT_WR)
    received = b""
    theirs.settimeout(0)
    deadline = loop.time() + WAIT
    while not handler.lost:
        assert loop.time() < deadline, "the transport never closed"
        turn(loop)
        try:
            while chunk := theirs.recv(65536):
                received += chunk
        except BlockingIOError:
            pass
    theirs.settimeout(WAIT)
    while chunk := theirs.recv(65536):
        received += chunk
    assert received == payload
    assert handler.lost == [None]  # an orderly close
    theirs.close()
    loop.close()


def test_what_one_turn_writes_leaves_when_the_turn_ends() -> None:
    """Writes are sent once the turn's events are handled (redis's
    beforeSleep flush): nothing before, everything together after."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport = SocketTransport(FlushQueue(loop), ours, Recorder())
    transport.write(b"ACCEPTED\n")
    transport.write(b"WON 150 WolfPackSword\n")
    with pytest.raises(BlockingIOError):
        theirs.recv(100)  # not sent from inside write()
    assert transport.pending_output == len(b"ACCEPTED\nWON 150 WolfPackSword\n")
    turn(loop)
    assert theirs.recv(100) == b"ACCEPTED\nWON 150 WolfPackSword\n"
    assert transport.pending_output == 0
    transport.abort()
    theirs.close()
    loop.close()


def test_stop_does_not_strand_what_was_written() -> None:
    """run() flushes before it returns, so a caller that writes and stops in
    the same turn loses nothing."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    transport = SocketTransport(FlushQueue(loop), ours, Recorder())
    loop.call_soon(lambda: (transport.write(b"BID\n"), loop.stop()))
    loop.run()
    assert theirs.recv(100) == b"BID\n"
    transport.abort()
    theirs.close()
    loop.close()


@pytest.mark.parametrize("reset", [False, True])
def test_abort_still_sends_what_this_turn_wrote(reset: bool) -> None:
    """abort() closes at once, but what was written this turn goes out first,
    as it would have if sent at write time: the client writes a typed bid and
    leaves with a reset (Ctrl-D mid-line) in the same turn."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    handler = Recorder()
    transport = SocketTransport(FlushQueue(loop), ours, handler)
    transport.write(b"150\n")
    transport.abort(reset=reset)
    assert transport.pending_output == 0
    assert theirs.recv(100) == b"150\n"
    assert handler.lost == []  # not from inside abort()...
    turn(loop)
    assert handler.lost == [None]  # ...but from the loop
    theirs.close()
    loop.close()


class SendBug(socket.socket):
    """A socket whose send() fails as no socket error does: a bug."""

    def send(self, data: object, flags: int = 0) -> int:
        raise RuntimeError("bug in a send")


def test_a_fatal_error_in_a_flush_leaves_the_other_transports_queued() -> None:
    """A flush that fails mid-way must not strand the output of the
    transports after it: the shell's abort_all() runs the loop again to
    tell everyone CANCELLED server-error."""
    loop = Loop()
    flushes = FlushQueue(loop)
    gone_ours, gone_theirs = socket.socketpair()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    broken = SocketTransport(flushes, SendBug(fileno=gone_ours.detach()), Recorder())
    survivor_handler = Recorder()
    survivor = SocketTransport(flushes, ours, survivor_handler)

    def turn_work() -> None:
        broken.write(b"x\n")
        survivor.write(b"WON 150 WolfPackSword\n")

    loop.call_soon(turn_work)
    with pytest.raises(FatalError, match="bug in a send"):
        loop.run()
    survivor.write(b"CANCELLED server-error\n")  # what abort_all does
    survivor.finish()
    turn(loop)  # the loop flushes before it waits: both lines, then the FIN
    received = b""
    while chunk := theirs.recv(100):
        received += chunk
    assert received == b"WON 150 WolfPackSword\nCANCELLED server-error\n"
    theirs.close()
    gone_theirs.close()
    run_until(loop, lambda: bool(survivor_handler.lost))
    loop.close()


def test_max_output_counts_only_what_the_peer_left_unread() -> None:
    """A turn may write more than --max-output to a client that reads: the
    cap is on what the kernel refused, not on one turn's output."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    handler = Recorder()
    transport = SocketTransport(FlushQueue(loop), ours, handler, max_output=8)
    transport.write(b"ROLE SELLER\n")
    transport.write(b"REQUEST\n")
    turn(loop)
    assert theirs.recv(100) == b"ROLE SELLER\nREQUEST\n"
    assert handler.lost == []
    # A peer that stops reading: once the kernel refuses output, more than
    # 8 unread bytes close the transport as lost.
    while transport.pending_output == 0:
        transport.write(b"x" * 65536)
        turn(loop)
    assert transport.closing or transport.pending_output > 8
    run_until(loop, lambda: bool(handler.lost))
    assert isinstance(handler.lost[0], OSError)
    theirs.close()
    loop.close()


def test_finish_gives_up_on_a_peer_that_never_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The final line cannot be flushed to a peer that never reads: the
    descriptor is released after LINGER_SECONDS, not held for ever."""
    monkeypatch.setattr(transport_mod, "LINGER_SECONDS", 0.2)
    loop = Loop()
    flushes = FlushQueue(loop)
    handler = Recorder()
    transport, peer = transport_pair(flushes, handler)
    while transport.pending_output == 0:  # fill both kernel buffers
        transport.write(b"x" * 65536)
        flushes.flush()  # as the loop does at the end of a turn
    transport.finish()
    began = time.monotonic()
    run_until(loop, lambda: bool(handler.lost))
    assert 0.15 < time.monotonic() - began < 2.0
    assert handler.lost == [None]
    loop.close()
    peer.close()


# --- a transport's handler: its exceptions, its connection_lost ----------------------


def test_connection_lost_never_comes_from_inside_a_call_the_handler_made() -> None:
    """abort() in data_received, and finish() in eof_received (nothing to
    send and the peer's EOF seen, so it closes at once): connection_lost
    comes only after the handler's call returned, once the other descriptor
    events of that turn were handled."""
    events: list[str] = []

    class Leaving(Recorder):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def data_received(self, data: bytes) -> None:
            events.append(f"{self.name} data")
            if self.name == "abort":
                self.transport.abort()
                events.append("abort returned")

        def eof_received(self) -> None:
            events.append(f"{self.name} eof")
            self.transport.finish()
            events.append("finish returned")

        def connection_lost(self, exc: BaseException | None) -> None:
            super().connection_lost(exc)
            events.append(f"{self.name} lost")

    loop = Loop()
    flushes = FlushQueue(loop)
    aborting, finishing, watching = Leaving("abort"), Leaving("finish"), Leaving("other")
    peers = [transport_pair(flushes, handler)[1] for handler in (aborting, finishing, watching)]
    peers[0].send(b"x")
    peers[1].shutdown(socket.SHUT_WR)
    peers[2].send(b"y")
    run_until(loop, lambda: bool(aborting.lost and finishing.lost))
    assert events == [
        "abort data", "abort returned", "finish eof", "finish returned", "other data",
        "abort lost", "finish lost",
    ]
    assert aborting.lost == finishing.lost == [None]
    assert watching.lost == []
    for peer in peers:
        peer.close()
    loop.close()


def test_an_exception_in_a_handler_closes_only_its_own_transport() -> None:
    loop = Loop()
    flushes = FlushQueue(loop)

    class Broken(Echo):
        def data_received(self, data: bytes) -> None:
            raise ZeroDivisionError("handler bug")

    bad, good = Broken(), Echo()
    _, bad_peer = transport_pair(flushes, bad)
    good_transport, good_peer = transport_pair(flushes, good)
    bad_peer.sendall(b"boom\n")
    good_peer.sendall(b"ping\n")
    run_until(loop, lambda: bool(bad.lost))
    assert [type(exc) for exc in bad.lost] == [ZeroDivisionError]
    assert bad_peer.recv(10) == b""
    assert good_peer.recv(10) == b"ping\n" and not good_transport.closing
    good_peer.sendall(b"still here\n")
    run_until(loop, lambda: good.data == b"ping\nstill here\n")
    assert good.lost == []
    for sock in (bad_peer, good_peer):
        sock.close()
    loop.close()


def test_an_exception_in_connection_made_closes_that_transport_only() -> None:
    """The transport is not left half set up: it closes, and
    connection_lost reports the exception on a later call."""

    class Refusing(Recorder):
        def connection_made(self, transport: Transport) -> None:
            super().connection_made(transport)
            raise ValueError("cannot start")

    loop = Loop()
    flushes = FlushQueue(loop)
    refusing = Refusing()
    _, refused_peer = transport_pair(flushes, refusing)  # does not raise
    assert refusing.lost == []
    echo = Echo()
    _, peer = transport_pair(flushes, echo)
    peer.sendall(b"ping\n")
    run_until(loop, lambda: bool(refusing.lost) and echo.data == b"ping\n")
    assert [type(exc) for exc in refusing.lost] == [ValueError]
    assert refused_peer.recv(10) == b""
    turn(loop)
    assert peer.recv(10) == b"ping\n"
    for sock in (refused_peer, peer):
        sock.close()
    loop.close()


def test_a_handler_that_raises_after_closing_its_transport_still_has_it_reported() -> None:
    """The handler aborted its own transport, then raised: connection_lost
    (still to come) reports the exception, not an orderly close."""

    class AbortThenFail(Recorder):
        def data_received(self, data: bytes) -> None:
            self.transport.abort()
            raise ValueError("bug after abort")

    loop = Loop()
    handler = AbortThenFail()
    _, peer = transport_pair(FlushQueue(loop), handler)
    peer.sendall(b"x")
    run_until(loop, lambda: bool(handler.lost))
    assert [type(exc) for exc in handler.lost] == [ValueError]
    peer.close()
    loop.close()


def test_error_in_close_handler_is_fatal_not_a_traceback() -> None:
    """A handler raises; its transport closes with that exception, and
    connection_lost raises too: the loop stops with FatalError (the server
    exits 70), not a traceback."""

    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise ValueError("bug in the handler")

        def connection_lost(self, exc: BaseException | None) -> None:
            raise KeyError("bug in the close handler")

    loop = Loop()
    ours, theirs = socket.socketpair()
    SocketTransport(FlushQueue(loop), ours, Broken())
    theirs.send(b"hello\n")
    loop.call_later(WAIT, loop.stop)
    with pytest.raises(FatalError, match="KeyError"):
        loop.run()
    theirs.close()
    loop.close()


# --- the listener -----------------------------------------------------------------


def test_listener_accepts_a_bounded_number_per_wake() -> None:
    loop = Loop()
    accepted: list[socket.socket] = []
    listener = Listener(
        loop, "127.0.0.1", 0, lambda sock, peer: accepted.append(sock),
        on_error=lambda peer, exc: None, backlog=16, max_per_wake=2,
    )
    clients = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(5)]
    counts = []
    for _ in range(3):  # one turn of the loop each
        loop.call_soon(loop.stop)
        loop.run()
        counts.append(len(accepted))
    assert counts == [2, 4, 5]
    for sock in accepted + clients:
        sock.close()
    listener.close()
    loop.close()


def test_a_connection_that_fails_to_start_is_closed_and_the_listener_serves_on() -> None:
    """The factory raising for one accepted connection closes that one
    connection, reports it with the peer's address, and the next one is
    served."""
    loop = Loop()
    flushes = FlushQueue(loop)
    errors: list[tuple[str, Exception]] = []
    echoes: list[Echo] = []

    def start(sock: socket.socket, peer: str) -> None:
        if not errors:
            raise RuntimeError("bug while setting up")
        echoes.append(Echo())
        SocketTransport(flushes, sock, echoes[-1], peer=peer)

    listener = Listener(
        loop, "127.0.0.1", 0, start, on_error=lambda peer, exc: errors.append((peer, exc)),
        backlog=16,
    )
    first = socket.create_connection(("127.0.0.1", listener.port), timeout=WAIT)
    run_until(loop, lambda: bool(errors))
    ((peer, exc),) = errors
    assert peer == f"127.0.0.1:{first.getsockname()[1]}"
    assert isinstance(exc, RuntimeError)
    assert first.recv(10) == b""  # closed, not left hanging
    second = socket.create_connection(("127.0.0.1", listener.port), timeout=WAIT)
    second.sendall(b"ping\n")
    run_until(loop, lambda: bool(echoes) and echoes[0].data == b"ping\n")
    turn(loop)
    assert second.recv(10) == b"ping\n"
    for sock in (first, second):
        sock.close()
    listener.close()
    loop.close()
