"""Line framing: bytes in, ``\\n``-terminated lines out. Pure, no sockets.

Modelled on h11's ``ReceiveBuffer``: the buffer remembers where it stopped
searching for a terminator, so a line that arrives one byte at a time costs
linear, not quadratic, work; and it caps incomplete input, so a peer that never
sends ``\\n`` cannot grow the buffer without bound.
"""

from __future__ import annotations

from collections.abc import Iterator

from .protocol import MAX_LINE


class LineTooLong(ValueError):
    """More than the cap arrived without a terminator."""


class LineBuffer:
    """Accumulates received bytes and yields complete lines.

    A line is everything up to ``\\n``; one ``\\r`` before it is removed too,
    so both ``\\n`` and ``\\r\\n`` terminate. A line may hold at most
    ``max_line`` bytes including its terminator.
    """

    __slots__ = ("_buf", "_start", "_searched", "_max_line")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._start = 0  # where the next line begins
        self._searched = 0  # no "\n" in _buf[_start:_searched]
        self._max_line = max_line

    def __len__(self) -> int:
        """Return the number of buffered bytes not yet returned as lines."""
        return len(self._buf) - self._start

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._start and self._start == len(self._buf):
            # Everything was consumed: start afresh rather than grow.
            self._buf.clear()
            self._start = self._searched = 0
        self._buf += data

    def next_line(self) -> bytes | None:
        """Return the next complete line without its terminator, or None.

        Raises LineTooLong if the next line exceeds the cap, whether or not
        its terminator has arrived; the buffer is useless after that.
        """
        buf = self._buf
        end = buf.find(b"\n", self._searched)
        if end < 0:
            self._searched = len(buf)
            if len(buf) - self._start >= self._max_line:
                raise LineTooLong(f"no line end within {self._max_line} bytes")
            if self._start > 4096:
                self._compact()
            return None
        start = self._start
        if end + 1 - start > self._max_line:
            raise LineTooLong(f"line longer than {self._max_line} bytes")
        self._start = self._searched = end + 1
        if end > start and buf[end - 1] == 13:  # "\r"
            end -= 1
        return bytes(buf[start:end])

    def lines(self) -> Iterator[bytes]:
        """Yield every complete line now buffered. Raises LineTooLong."""
        while (line := self.next_line()) is not None:
            yield line

    def _compact(self) -> None:
        del self._buf[: self._start]
        self._searched -= self._start
        self._start = 0
