"""Unit tests of the reactor's streams and the action coalescing, over
socket pairs: no server process."""

from __future__ import annotations

import socket

import pytest

from bench.baselines.common import coalesce
from reactor_auction.events import Close, Log, Record, Send
from reactor_auction.reactor import FatalError, Loop, PollWindow, Stream

WAIT = 10.0


class Recorder:
    """A StreamHandler that remembers what happened."""

    def __init__(self) -> None:
        self.data = b""
        self.lost: list[BaseException | None] = []

    def data_received(self, stream: Stream, data: bytes) -> None:
        self.data += data

    def eof_received(self, stream: Stream) -> None:
        pass

    def connection_lost(self, stream: Stream, exc: BaseException | None) -> None:
        self.lost.append(exc)


def turn(loop: Loop) -> None:
    """Run the loop for one short turn (waiting at most 10 ms for events)."""
    loop.call_later(0.01, loop.stop)
    loop.run()


def run_until(loop: Loop, done: object, timeout: float = WAIT) -> None:
    """Turn the loop until ``done()`` is true."""
    deadline = loop.time() + timeout
    while not done():  # type: ignore[operator]
        assert loop.time() < deadline, "condition never held"
        turn(loop)


def test_half_closed_peer_still_gets_the_whole_final_output() -> None:
    """A peer that sends FIN (nc -N) while its final line is still queued
    must receive all of it: end of input is not a reason to drop output."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    handler = Recorder()
    stream = Stream(loop, ours, handler)
    payload = b"x" * 200_000 + b"\nSOLD 150 WolfPackSword\n"
    stream.write(payload)
    assert stream.pending_output > 0  # the kernel took only part of it
    stream.finish()
    theirs.shutdown(socket.SHUT_WR)
    received = b""
    theirs.settimeout(0)
    deadline = loop.time() + WAIT
    while not handler.lost:
        assert loop.time() < deadline, "the stream never closed"
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


def test_error_in_close_handler_is_fatal_not_a_traceback() -> None:
    """A stream callback raises; closing the stream calls connection_lost,
    which raises too: the loop reports FatalError, not the raw exception."""

    class Broken(Recorder):
        def data_received(self, stream: Stream, data: bytes) -> None:
            raise ValueError("bug in the handler")

        def connection_lost(self, stream: Stream, exc: BaseException | None) -> None:
            raise KeyError("bug in the close handler")

    loop = Loop()
    ours, theirs = socket.socketpair()
    Stream(loop, ours, Broken())
    theirs.send(b"hello\n")
    loop.call_later(WAIT, loop.stop)
    with pytest.raises(FatalError, match="KeyError"):
        loop.run()
    theirs.close()
    loop.close()


def test_error_in_data_handler_closes_only_that_stream() -> None:
    class Broken(Recorder):
        def data_received(self, stream: Stream, data: bytes) -> None:
            raise ValueError("bug in the handler")

    loop = Loop()
    bad_ours, bad_theirs = socket.socketpair()
    good_ours, good_theirs = socket.socketpair()
    bad, good = Broken(), Recorder()
    Stream(loop, bad_ours, bad)
    Stream(loop, good_ours, good)
    bad_theirs.send(b"boom\n")
    run_until(loop, lambda: bool(bad.lost))
    assert isinstance(bad.lost[0], ValueError)
    good_theirs.send(b"still here\n")
    run_until(loop, lambda: good.data == b"still here\n")
    assert good.lost == []
    for sock in (bad_theirs, good_theirs, good_ours):
        sock.close()
    loop.close()


def test_what_one_turn_writes_leaves_when_the_turn_ends() -> None:
    """Writes are sent once the turn's events are handled (redis's
    beforeSleep flush): nothing before, everything together after."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    stream = Stream(loop, ours, Recorder())
    stream.write(b"ACCEPTED\n")
    stream.write(b"WON 150 WolfPackSword\n")
    with pytest.raises(BlockingIOError):
        theirs.recv(100)  # not sent from inside write()
    assert stream.pending_output == len(b"ACCEPTED\nWON 150 WolfPackSword\n")
    turn(loop)
    assert theirs.recv(100) == b"ACCEPTED\nWON 150 WolfPackSword\n"
    assert stream.pending_output == 0
    stream.abort()
    theirs.close()
    loop.close()


def test_stop_does_not_strand_what_was_written() -> None:
    """run() flushes before it returns, so a caller that writes and stops in
    the same turn loses nothing."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    stream = Stream(loop, ours, Recorder())
    loop.call_soon(lambda: (stream.write(b"BID\n"), loop.stop()))
    loop.run()
    assert theirs.recv(100) == b"BID\n"
    stream.abort()
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
    stream = Stream(loop, ours, handler)
    stream.write(b"150\n")
    stream.abort(reset=reset)
    assert handler.lost == [None]
    assert stream.pending_output == 0
    assert theirs.recv(100) == b"150\n"
    theirs.close()
    loop.close()


def test_a_fatal_error_in_a_flush_leaves_the_other_streams_queued() -> None:
    """A close handler raising FatalError mid-flush must not strand the
    output of the streams after it: the shell's abort_all() runs the loop
    again to tell everyone CANCELLED server-error."""

    class Fatal(Recorder):
        def connection_lost(self, stream: Stream, exc: BaseException | None) -> None:
            super().connection_lost(stream, exc)
            raise FatalError("bug in the auction")

    loop = Loop()
    gone_ours, gone_theirs = socket.socketpair()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    broken = Stream(loop, gone_ours, Fatal())
    survivor = Stream(loop, ours, Recorder())
    gone_theirs.close()  # the first stream's send fails in the flush

    def turn_work() -> None:
        broken.write(b"x\n")
        survivor.write(b"WON 150 WolfPackSword\n")

    loop.call_soon(turn_work)
    with pytest.raises(FatalError):
        loop.run()
    survivor.write(b"CANCELLED server-error\n")  # what abort_all does
    survivor.finish()
    turn(loop)  # the loop flushes before it waits: both lines, then the FIN
    received = b""
    while chunk := theirs.recv(100):
        received += chunk
    assert received == b"WON 150 WolfPackSword\nCANCELLED server-error\n"
    theirs.close()
    run_until(loop, lambda: survivor.closed)
    loop.close()


def test_max_output_counts_only_what_the_peer_left_unread() -> None:
    """A turn may write more than --max-output to a client that reads: the
    cap is on what the kernel refused, not on one turn's output."""
    loop = Loop()
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    handler = Recorder()
    stream = Stream(loop, ours, handler, max_output=8)
    stream.write(b"ROLE SELLER\n")
    stream.write(b"REQUEST\n")
    turn(loop)
    assert theirs.recv(100) == b"ROLE SELLER\nREQUEST\n"
    assert handler.lost == []
    # A peer that stops reading: once the kernel refuses output, more than
    # 8 unread bytes close the stream as lost.
    while stream.pending_output == 0:
        stream.write(b"x" * 65536)
        turn(loop)
    assert stream.closed or stream.pending_output > 8
    run_until(loop, lambda: bool(handler.lost))
    assert isinstance(handler.lost[0], OSError)
    theirs.close()
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
    Stream(loop, ours, handler)
    theirs.send(b"BID\n")
    run_until(loop, lambda: handler.data == b"BID\n")
    fired: list[bool] = []
    loop.poll.current = 0.05
    loop.call_later(0.001, lambda: fired.append(True))
    run_until(loop, lambda: bool(fired))
    assert loop.poll.current < 0.05  # no event came: the window shrank
    theirs.close()
    loop.close()


# --- coalesce ---------------------------------------------------------------------


def test_coalesce_merges_each_connections_sends_at_its_first() -> None:
    log = Log("bid", (1, 120))
    actions = [Send(1, b"A\n"), log, Send(2, b"B\n"), Send(1, b"C\n"), Send(2, b"D\n")]
    assert coalesce(actions) == [Send(1, b"A\nC\n"), log, Send(2, b"B\nD\n")]


def test_coalesce_keeps_close_after_the_sends_before_it() -> None:
    actions = [Send(1, b"A\n"), Send(1, b"B\n"), Close(1), Send(1, b"late\n")]
    assert coalesce(actions) == [Send(1, b"A\nB\n"), Close(1), Send(1, b"late\n")]


def test_coalesce_moves_nothing_across_a_record() -> None:
    record = Record(record=None)  # type: ignore[arg-type]
    actions = [Send(1, b"ACCEPTED\n"), record, Send(1, b"WON 5 X\n")]
    assert coalesce(actions) == actions


def test_coalesce_of_nothing_is_nothing() -> None:
    assert coalesce([]) == []
