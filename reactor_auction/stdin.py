"""The client's standard input, read from the loop on demand.

A terminal or a pipe is watched by the selector; a regular file or
``/dev/null``, which epoll refuses and which never blocks, is read on
deferred calls of the loop instead.
"""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable

from .loop import AGAIN, Loop

#: What one read of standard input asks for.
READ_SIZE = 65536


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
            self._loop.unwatch(self._fd)

    def stop(self) -> None:
        """Stop for good, as at the end of input."""
        self.pause()
        self.eof = True

    def _on_readable(self, mask: int) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except AGAIN:
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
