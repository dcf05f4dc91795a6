"""Unit tests of framing.LineBuffer: lines fed whole, one byte at a time and in
random splits; ``\\n`` and ``\\r\\n``; the 1024-byte cap; linear search."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from reactor_auction.framing import LineBuffer, LineTooLong
from reactor_auction.protocol import MAX_LINE

#: A stream exercising everything a client may send, and the lines it holds.
STREAM = (
    b"2 100 3 WolfPackSword\n"
    b"\n"  # an empty line is a line
    b"120\r\n"
    b"\r\n"
    b"  spaced  out  \n"
    b"inner\rcarriage\n"  # only a \r right before \n is a terminator
    b"\r\r\n"  # one \r is removed, the other stays
    + "Épée à deux mains\n".encode()
    + b"y" * (MAX_LINE - 1) + b"\n"  # exactly at the cap
    + b"z" * (MAX_LINE - 2) + b"\r\n"
    + b"last\n"
)
LINES = [
    b"2 100 3 WolfPackSword",
    b"",
    b"120",
    b"",
    b"  spaced  out  ",
    b"inner\rcarriage",
    b"\r",
    "Épée à deux mains".encode(),
    b"y" * (MAX_LINE - 1),
    b"z" * (MAX_LINE - 2),
    b"last",
]


def feed_all(chunks: Iterable[bytes], buf: LineBuffer | None = None) -> list[bytes]:
    """Return every line the chunks hold, feeding them one by one and taking
    lines after each (as the server does)."""
    buf = LineBuffer() if buf is None else buf
    out: list[bytes] = []
    for chunk in chunks:
        buf.feed(chunk)
        out.extend(buf.lines())
    return out


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    """Return ``data`` cut at random places (chunks of 1 to 40 bytes)."""
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        chunks.append(data[i : i + n])
        i += n
    return chunks


def test_fed_whole() -> None:
    assert feed_all([STREAM]) == LINES


def test_fed_one_byte_at_a_time() -> None:
    assert feed_all(STREAM[i : i + 1] for i in range(len(STREAM))) == LINES


@pytest.mark.parametrize("seed", range(20))
def test_fed_in_random_splits(seed: int) -> None:
    rng = random.Random(seed)
    assert feed_all(random_splits(STREAM, rng)) == LINES


def test_many_lines_in_one_chunk() -> None:
    data = b"".join(b"%d\n" % i for i in range(5000))
    assert feed_all([data]) == [b"%d" % i for i in range(5000)]


def test_incomplete_line_waits_for_its_terminator() -> None:
    buf = LineBuffer()
    buf.feed(b"2 100 3 Wolf")
    assert buf.next_line() is None
    assert len(buf) == 12
    buf.feed(b"PackSword\r")
    assert buf.next_line() is None  # a lone \r ends nothing
    buf.feed(b"\nnext")
    assert buf.next_line() == b"2 100 3 WolfPackSword"
    assert buf.next_line() is None
    assert len(buf) == 4


def test_consumed_buffer_is_reused() -> None:
    buf = LineBuffer()
    for i in range(3):
        buf.feed(b"line %d\n" % i)
        assert list(buf.lines()) == [b"line %d" % i]
        assert len(buf) == 0


# --- the cap: 1024 bytes including the terminator -----------------------------------


@pytest.mark.parametrize(
    "line", [b"a" * (MAX_LINE - 1) + b"\n", b"a" * (MAX_LINE - 2) + b"\r\n"]
)
def test_line_of_exactly_the_cap_is_accepted(line: bytes) -> None:
    assert len(line) == MAX_LINE
    assert feed_all([line]) == [b"a" * (MAX_LINE - 1 - line.count(b"\r"))]
    assert feed_all(line[i : i + 1] for i in range(len(line))) == [line.rstrip(b"\r\n")]


@pytest.mark.parametrize(
    "line", [b"a" * MAX_LINE + b"\n", b"a" * (MAX_LINE - 1) + b"\r\n"]
)
def test_line_over_the_cap_is_refused(line: bytes) -> None:
    assert len(line) == MAX_LINE + 1
    with pytest.raises(LineTooLong):
        feed_all([line])


def test_cap_without_terminator_is_refused_before_the_terminator_arrives() -> None:
    """1024 bytes without ``\\n`` can never become a line of at most 1024."""
    buf = LineBuffer()
    buf.feed(b"a" * (MAX_LINE - 1))
    assert buf.next_line() is None  # 1023 bytes may still be a line
    buf.feed(b"a")
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_cap_without_terminator_one_byte_at_a_time() -> None:
    buf = LineBuffer()
    with pytest.raises(LineTooLong):
        for _ in range(MAX_LINE + 10):
            buf.feed(b"a")
            assert buf.next_line() is None
    assert len(buf) == MAX_LINE  # refused at the 1024th byte, not later


def test_cap_counts_from_the_start_of_each_line() -> None:
    """Short lines before a long one do not count towards its cap."""
    data = b"ok\n" * 1000 + b"b" * (MAX_LINE - 1) + b"\n"
    assert feed_all([data]) == [b"ok"] * 1000 + [b"b" * (MAX_LINE - 1)]


def test_lines_before_an_overlong_one_still_come_out() -> None:
    buf = LineBuffer()
    buf.feed(b"first\nsecond\n" + b"x" * 2000)
    assert buf.next_line() == b"first"
    assert buf.next_line() == b"second"
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_overlong_line_with_terminator_in_same_chunk() -> None:
    buf = LineBuffer()
    buf.feed(b"x" * 5000 + b"\nok\n")
    with pytest.raises(LineTooLong):
        buf.next_line()


def test_smaller_cap() -> None:
    buf = LineBuffer(max_line=4)
    buf.feed(b"abc\nabcd\n")
    assert buf.next_line() == b"abc"
    with pytest.raises(LineTooLong):
        buf.next_line()


# --- the remembered search position --------------------------------------------------


class CountingBuffer(bytearray):
    """A bytearray that counts how many bytes ``find`` had to look at."""

    scanned = 0

    def find(self, sub: object, start: int = 0, *args: object) -> int:  # type: ignore[override]
        CountingBuffer.scanned += max(0, len(self) - start)
        return super().find(sub, start, *args)  # type: ignore[arg-type]


def test_search_resumes_where_it_stopped() -> None:
    """A line arriving one byte at a time is searched once per byte, not once
    per byte per arrival (linear, not quadratic, work)."""
    buf = LineBuffer()
    buf._buf = CountingBuffer()  # white-box: count the scan
    CountingBuffer.scanned = 0
    for _ in range(MAX_LINE - 1):
        buf.feed(b"a")
        assert buf.next_line() is None
    buf.feed(b"\n")
    assert buf.next_line() == b"a" * (MAX_LINE - 1)
    # Each byte is looked at once (quadratic would be about 500,000).
    assert CountingBuffer.scanned <= 2 * MAX_LINE


def test_search_position_survives_compaction() -> None:
    """A buffer that never empties (every chunk ends mid-line) compacts its
    consumed head; framing stays exact and memory stays bounded."""
    rng = random.Random(1234)
    lines = [bytes(rng.choice(b"abc \r") for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    data = b"".join(line + b"\n" for line in lines)
    want = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    cuts = [0]
    while cuts[-1] < len(data):
        cut = min(len(data), cuts[-1] + rng.randint(1, 200))
        while cut < len(data) and data[cut - 1] == 10:  # never right after "\n"
            cut += 1
        cuts.append(cut)
    buf = LineBuffer()
    got: list[bytes] = []
    largest = 0
    for a, b in zip(cuts, cuts[1:], strict=False):
        buf.feed(data[a:b])
        got.extend(buf.lines())
        largest = max(largest, len(buf._buf))  # white-box
    assert got == want
    assert largest < 4096 + 2 * MAX_LINE  # compacted, not grown to len(data)
