#!/usr/bin/env python3
"""Benchmark baseline: the auction server on asyncio streams.

    python3 bench/baselines/asyncio_server.py PORT [auc_server's options]

The idiomatic asyncio shape: ``asyncio.start_server`` (backlog 4096) runs one
task per connection, which reads with ``StreamReader.readline`` (its limit set
so that a line holds at most 1024 bytes with its terminator, as
framing.LineBuffer allows) and answers with ``writer.write``/``drain``. The
auction is the project's own sans-IO machine behind common.Shell, so only the
I/O layer differs from auc_server. uvloop_server.py runs this same code on
uvloop. No ledger is kept (see common.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
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
    strip_terminator,
)
from reactor_auction.events import (  # noqa: E402
    Connected,
    InputEnded,
    LineReceived,
    LineTooLong,
)
from reactor_auction.net import format_peer  # noqa: E402
from reactor_auction.protocol import MAX_LINE  # noqa: E402

#: readline's limit counts the line without its "\n": 1023 + 1 = MAX_LINE bytes,
#: and an unterminated run of MAX_LINE bytes is refused, as LineBuffer does.
LINE_LIMIT = MAX_LINE - 1


class _StreamLink:
    """One connection's output side, as common.Shell drives it."""

    __slots__ = ("writer", "transport", "loop", "max_output", "detached", "eof", "aborted",
                 "linger")

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter,
                 max_output: int) -> None:
        self.loop = loop
        self.writer = writer
        self.transport = writer.transport
        self.max_output = max_output
        self.detached = False
        self.eof = False  # the peer sent FIN
        self.aborted = False  # we dropped it (output overflow): a departure
        self.linger: asyncio.TimerHandle | None = None

    def send(self, data: bytes) -> None:
        """Write ``data``; more than max_output unsent drops the connection."""
        transport = self.transport
        if transport.is_closing():
            return
        self.writer.write(data)
        if transport.get_write_buffer_size() > self.max_output:
            # A peer that does not read: the same cap as auc_server. The
            # handler's read then ends and reports the departure.
            self.aborted = True
            transport.abort()

    def finish(self) -> None:
        """Flush, FIN, then linger for the peer's FIN (the handler closes on it)."""
        transport = self.transport
        if transport.is_closing():
            return
        if self.eof:
            transport.close()  # flushes first; nothing more can arrive
            return
        try:
            self.writer.write_eof()  # FIN once the buffer has drained
        except OSError:  # the peer is gone already (reset not yet read)
            transport.abort()
            return
        self.linger = self.loop.call_later(LINGER_SECONDS, transport.close)

    def close(self) -> None:
        """Close now (after a flush) and forget the linger timer."""
        if self.linger is not None:
            self.linger.cancel()
            self.linger = None
        if not self.transport.is_closing():
            self.transport.close()


class AsyncServer:
    """The auction behind ``asyncio.start_server``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, options: Options) -> None:
        self.loop = loop
        self.options = options
        self.shell = Shell(options.auction(), options.log, self._arm)
        self._timer: asyncio.TimerHandle | None = None
        self._server: asyncio.base_events.Server | None = None
        self._done: asyncio.Future[None] = loop.create_future()

    # -- deadlines and stopping ---------------------------------------------------

    def _arm(self, when: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            delay = max(0.0, when - time.monotonic())
            self._timer = self.loop.call_later(delay, self._on_deadline)

    def _on_deadline(self) -> None:
        self._timer = None
        self.shell.on_deadline()

    def _on_signal(self) -> None:
        if self.shell.stopping:  # a second signal stops at once
            self._stop()
            return
        if self._server is not None:
            self._server.close()
        self.loop.call_later(SHUTDOWN_GRACE, self._stop)
        self.shell.shutdown()
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        if self.shell.stopping and not self.shell.links:
            self._stop()

    def _stop(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    # -- serving ------------------------------------------------------------------

    async def serve(self) -> None:
        """Listen, say so, serve until stopped. Raises OSError if the port cannot be opened."""
        options = self.options
        self._server = await asyncio.start_server(
            self._handle, options.host or None, options.port, limit=LINE_LIMIT, backlog=BACKLOG
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(signum, self._on_signal)
        options.listening(self._server.sockets[0].getsockname()[1])
        await self._done

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shell = self.shell
        link = _StreamLink(self.loop, writer, self.options.max_output)
        conn = shell.add(link)
        shell.feed(Connected(conn, format_peer(writer.get_extra_info("socket"))))
        discarded = 0
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the cap: readline dropped it
                    if not link.detached:
                        shell.feed(LineTooLong(conn))
                    continue
                if not line.endswith(b"\n"):
                    break  # end of input; an unterminated tail is no line
                if link.detached:  # lingering after the final line: discard
                    discarded += len(line)
                    if discarded > LINGER_BYTES:
                        break
                    continue
                shell.feed(LineReceived(conn, strip_terminator(line)))
                await writer.drain()
            if not link.detached and not link.aborted:
                link.eof = True
                shell.feed(InputEnded(conn))
                if not link.detached:
                    await writer.wait_closed()  # half-closed: it may still get its result
        except (ConnectionError, OSError):
            pass  # reset or write failure: a departure, reported below
        finally:
            link.close()
            shell.lost(conn)
            self._stop_when_idle()


def main(
    argv: Sequence[str] | None = None,
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    prog: str = "asyncio_server.py",
    what: str = "asyncio streams",
) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status (0, or 4
    when the port cannot be opened)."""
    options = parse_options(prog, what, argv)
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    server = AsyncServer(loop, options)
    try:
        loop.run_until_complete(server.serve())
    except OSError as exc:
        print(f"{prog}: cannot listen on port {options.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 4
    # Exit without tearing down the tasks still lingering on closed sockets.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
