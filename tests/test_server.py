"""Raw-socket tests against a real server process, one per row of PROTOCOL.md.

Each test starts a server on a free port (``start_server``) and talks to it
with ``RawClient``s (``connect``). Synchronisation is always on an event: a
line a client receives, EOF, or (for our server only) a console line.

The protocol tests do not depend on console wording, so they also run against
another server named by ``AUC_SERVER``. Tests of this server's console text,
options and ledger are marked ``ours_only``.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SERVER_BIN, WAIT, RawClient, ServerProcess, free_port
from hostile_tools import reset

OURS = not os.environ.get("AUC_SERVER")
ours_only = pytest.mark.skipif(
    not OURS, reason="checks this server's console text, options or ledger"
)

Start = Callable[..., ServerProcess]
Connect = Callable[[int], RawClient]

#: The auction of TRANSCRIPTS.md.
TRANSCRIPT_REQUEST = b"2 100 3 WolfPackSword"
TRANSCRIPT_BIDS = (120, 150, 180)
ITEM = b"WolfPackSword"


# --- helpers -----------------------------------------------------------------


def open_seller(connect: Connect, port: int, request: bytes = TRANSCRIPT_REQUEST) -> RawClient:
    """Return the seller connection after its request was accepted."""
    seller = connect(port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(request + b"\n")
    seller.expect(b"START")
    return seller


def join(connect: Connect, port: int, number: int, waiting: tuple[int, int] | None) -> RawClient:
    """Return a new buyer after ``ROLE BUYER <number>`` (and ``WAITING c n``)."""
    buyer = connect(port)
    buyer.expect(b"ROLE BUYER %d" % number)
    if waiting is not None:
        buyer.expect(b"WAITING %d %d" % waiting)
    return buyer


def fill(connect: Connect, port: int, count: int) -> list[RawClient]:
    """Connect ``count`` buyers one after another (the count the seller asked
    for); return them once every one was sent ``BID``."""
    buyers = [join(connect, port, n, (n, count)) for n in range(1, count)]
    buyers.append(join(connect, port, count, None))
    for buyer in buyers:
        buyer.expect(b"BID")
    return buyers


def auction(
    connect: Connect, port: int, request: bytes = TRANSCRIPT_REQUEST
) -> tuple[RawClient, list[RawClient]]:
    """Return (seller, buyers) of an auction in ``bidding``."""
    seller = open_seller(connect, port, request)
    return seller, fill(connect, port, int(request.split()[2]))


def bid(buyer: RawClient, amount: int | bytes) -> None:
    buyer.send((b"%d" % amount if isinstance(amount, int) else amount) + b"\n")
    buyer.expect(b"ACCEPTED")


def final(client: RawClient, line: bytes) -> None:
    """Assert ``line`` is the last thing the server sends, then it closes."""
    client.expect(line)
    client.expect_closed()


def depart(client: RawClient) -> None:
    """Leave with a TCP reset (the way the project's client leaves)."""
    reset(client.sock)


def half_close(client: RawClient) -> None:
    """End input (``nc -N``): the server reads EOF, the client still reads."""
    client.sock.shutdown(socket.SHUT_WR)


def barrier(client: RawClient, reply: bytes) -> None:
    """Send an empty line and wait for ``reply``: the server has handled
    everything that reached it before (our selectors loop handles a batch of
    ready sockets before it accepts anything new)."""
    client.send(b"\n")
    client.expect(reply)


def saw(server: ServerProcess, text: str) -> None:
    """With our server, also wait for its console line (a stronger barrier)."""
    if OURS:
        server.wait_for(text)


def connect_as(connect: Connect, port: int, first: bytes) -> RawClient:
    """Connect until the first line is ``first``, retrying while it is BUSY
    (the server may not have handled a departure yet); return the client."""
    deadline = time.monotonic() + WAIT
    while True:
        client = connect(port)
        line = client.line()
        if line == first:
            return client
        assert line == b"BUSY", line
        client.expect_closed()
        client.close()
        assert time.monotonic() < deadline, f"still BUSY after {WAIT}s"


def local_port(client: RawClient) -> int:
    return int(client.sock.getsockname()[1])


def run(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    """Run our server with ``args`` to completion; return the result."""
    return subprocess.run(
        [sys.executable, str(SERVER_BIN), *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def server(start_server: Start) -> ServerProcess:
    """A server with default options."""
    return start_server()


# === roles ===================================================================


def test_first_connection_is_the_seller(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")


def test_buyers_are_numbered_and_told_the_count(server: ServerProcess, connect: Connect) -> None:
    open_seller(connect, server.port)
    one = join(connect, server.port, 1, (1, 3))
    two = join(connect, server.port, 2, (2, 3))
    three = join(connect, server.port, 3, None)  # completes the count: no WAITING
    for buyer in (one, two, three):
        buyer.expect(b"BID")


def test_transcript_auction_second_price(server: ServerProcess, connect: Connect) -> None:
    seller, buyers = auction(connect, server.port)
    for buyer, amount in zip(buyers, TRANSCRIPT_BIDS, strict=True):
        bid(buyer, amount)
    final(seller, b"SOLD 150 " + ITEM)
    final(buyers[0], b"LOST " + ITEM)
    final(buyers[1], b"LOST " + ITEM)
    final(buyers[2], b"WON 150 " + ITEM)


def test_next_auction_starts_afresh(server: ServerProcess, connect: Connect) -> None:
    seller, (buyer,) = auction(connect, server.port, b"1 10 1 First")
    bid(buyer, 10)
    final(buyer, b"WON 10 First")
    final(seller, b"SOLD 10 First")
    seller, (buyer,) = auction(connect, server.port, b"1 10 1 Second")  # buyer 1 again
    bid(buyer, 12)
    final(buyer, b"WON 12 Second")


# === BUSY ====================================================================


def test_busy_while_a_seller_composes(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    final(connect(server.port), b"BUSY")
    seller.send(b"1 10 1 X\n")  # the seller was not disturbed
    seller.expect(b"START")


def test_busy_while_bidding(server: ServerProcess, connect: Connect) -> None:
    seller, buyers = auction(connect, server.port, b"1 10 2 X")
    final(connect(server.port), b"BUSY")
    bid(buyers[0], 10)
    bid(buyers[1], 11)
    final(seller, b"SOLD 11 X")


@ours_only
def test_busy_while_finishing_waits_for_the_ledger(
    start_server: Start, connect: Connect, tmp_path: Path
) -> None:
    """Finishing lasts while the ledger is locked by another program: newcomers
    get BUSY, lines are DONE, a departure loses only its own result, and the
    results go out once the row is committed."""
    path = tmp_path / "locked.sqlite3"
    server = start_server("--ledger", str(path))
    seller, buyers = auction(connect, server.port, b"2 100 3 X")
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        for buyer, amount in zip(buyers, (120, 150, 180), strict=True):
            bid(buyer, amount)
        server.wait_for("Ledger is busy")  # the server is in finishing
        final(connect(server.port), b"BUSY")
        barrier(buyers[0], b"DONE")
        barrier(seller, b"DONE")
        depart(buyers[2])  # the winner leaves while finishing
        server.wait_for("Buyer 3 left the auction")
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    final(seller, b"SOLD 150 X")
    final(buyers[0], b"LOST X")
    final(buyers[1], b"LOST X")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT outcome, winner, price FROM auctions").fetchall() == [
            ("sold", 3, 150)
        ]


# === INVALID and re-prompt ===================================================


@pytest.mark.parametrize(
    "bad",
    [b"some wrong input", b"", b"3 100 3 X", b"2 0 3 X", b"2 100 0 X", b"2 +100 3 X",
     "2 ١٠٠ 3 X".encode(), b"2 100 3 \xff\xfeX", b"\xc3\x28 100 3 X"],
)
def test_invalid_request_reprompts(server: ServerProcess, connect: Connect, bad: bytes) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    for _ in range(2):
        seller.send(bad + b"\n")
        seller.expect(b"INVALID request", b"REQUEST")
    seller.send(b"1 10 1 X\n")
    seller.expect(b"START")


def test_invalid_bid_reprompts(server: ServerProcess, connect: Connect) -> None:
    seller, (buyer,) = auction(connect, server.port, b"1 10 1 X")
    for bad in (b"some wrong bid", b"", b"0", b"-5", b"1_0", b"12.5", "١٢٣".encode(), b"\xff"):
        buyer.send(bad + b"\n")
        buyer.expect(b"INVALID bid", b"BID")
    bid(buyer, 15)
    final(buyer, b"WON 15 X")
    final(seller, b"SOLD 15 X")


@ours_only
def test_max_buyers_bounds_the_request(start_server: Start, connect: Connect) -> None:
    server = start_server("--max-buyers", "2")
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"1 10 3 X\n")
    seller.expect(b"INVALID request", b"REQUEST")
    seller.send(b"1 10 2 X\n")
    seller.expect(b"START")


# === NOTYET, DONE, one bid ===================================================


def test_notyet_before_bid_is_never_a_bid(server: ServerProcess, connect: Connect) -> None:
    seller = open_seller(connect, server.port, b"1 10 2 X")
    early = join(connect, server.port, 1, (1, 2))
    early.send(b"999\n")
    early.expect(b"NOTYET")
    early.send(b"\n")
    early.expect(b"NOTYET")
    other = join(connect, server.port, 2, None)
    early.expect(b"BID")
    other.expect(b"BID")
    bid(early, 20)  # still allowed to bid: the 999 did not count
    bid(other, 30)
    final(other, b"WON 30 X")
    final(early, b"LOST X")
    final(seller, b"SOLD 30 X")


def test_done_after_accepted_and_one_bid_only(server: ServerProcess, connect: Connect) -> None:
    seller, (high, low) = auction(connect, server.port, b"1 10 2 X")
    bid(low, 20)
    low.send(b"500\n")  # a second bid is not a bid
    low.expect(b"DONE")
    low.send(b"junk\n")
    low.expect(b"DONE")
    bid(high, 30)
    final(high, b"WON 30 X")
    final(low, b"LOST X")
    final(seller, b"SOLD 30 X")


def test_done_for_seller_after_start(server: ServerProcess, connect: Connect) -> None:
    seller = open_seller(connect, server.port, b"1 10 1 X")
    seller.send(b"2 100 3 Another\n")  # waiting-buyers
    seller.expect(b"DONE")
    buyer = join(connect, server.port, 1, None)
    buyer.expect(b"BID")
    seller.send(b"50\n")  # bidding
    seller.expect(b"DONE")
    bid(buyer, 10)
    final(seller, b"SOLD 10 X")


# === the outcome =============================================================


@pytest.mark.parametrize(
    ("request_line", "bids", "results"),
    [
        # ties go to the earliest bid (buyer 2 here); a tie at the top pays the tied amount
        (b"1 100 3 X", [(2, 150), (1, 150), (3, 120)],
         [b"SOLD 150 X", b"LOST X", b"WON 150 X", b"LOST X"]),
        (b"2 100 3 X", [(2, 150), (1, 150), (3, 120)],
         [b"SOLD 150 X", b"LOST X", b"WON 150 X", b"LOST X"]),
        # second price never below min_price
        (b"2 100 2 Old Map", [(1, 50), (2, 300)],
         [b"SOLD 100 Old Map", b"LOST Old Map", b"WON 100 Old Map"]),
        # first price pays its own bid
        (b"1 100 2 X", [(1, 250), (2, 300)], [b"SOLD 300 X", b"LOST X", b"WON 300 X"]),
        # unsold below min_price, to everyone, with the highest bid
        (b"1 200 2 X", [(1, 150), (2, 199)],
         [b"UNSOLD 199 X", b"UNSOLD 199 X", b"UNSOLD 199 X"]),
    ],
    ids=["tie-first-price", "tie-second-price", "second-price-min", "first-price", "unsold"],
)
def test_outcome(
    server: ServerProcess,
    connect: Connect,
    request_line: bytes,
    bids: list[tuple[int, int]],
    results: list[bytes],
) -> None:
    """Bids go in the given order (each ACCEPTED before the next); ``results``
    are the seller's final line, then each buyer's."""
    seller, buyers = auction(connect, server.port, request_line)
    for number, amount in bids:
        bid(buyers[number - 1], amount)
    for client, line in zip([seller, *buyers], results, strict=True):
        final(client, line)


# === departures (a reset) in every state =====================================


def test_seller_departure_before_start(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    depart(seller)
    nxt = connect_as(connect, server.port, b"ROLE SELLER")
    nxt.expect(b"REQUEST")


def seller_leaves_while_buyers_wait(
    connect: Connect, port: int, leave: Callable[[RawClient], None]
) -> RawClient:
    """Two of three buyers wait when the seller leaves (``leave``): both are
    told the auction is cancelled; return the seller's connection."""
    seller = open_seller(connect, port, b"1 10 3 X")
    one = join(connect, port, 1, (1, 3))
    two = join(connect, port, 2, (2, 3))
    leave(seller)
    final(one, b"CANCELLED seller-left")
    final(two, b"CANCELLED seller-left")
    nxt = connect_as(connect, port, b"ROLE SELLER")  # back to waiting-seller
    nxt.expect(b"REQUEST")
    return seller


def test_seller_departure_waiting_buyers_cancels(server: ServerProcess, connect: Connect) -> None:
    seller_leaves_while_buyers_wait(connect, server.port, depart)


def test_seller_departure_in_bidding_auction_goes_on(
    server: ServerProcess, connect: Connect
) -> None:
    seller, (one, two) = auction(connect, server.port, b"2 10 2 X")
    depart(seller)
    saw(server, "Seller left the auction")
    bid(one, 20)
    bid(two, 30)
    final(two, b"WON 20 X")
    final(one, b"LOST X")


def test_buyer_departure_waiting_buyers_frees_the_place(
    server: ServerProcess, connect: Connect
) -> None:
    seller = open_seller(connect, server.port, b"1 10 3 X")
    one = join(connect, server.port, 1, (1, 3))
    two = join(connect, server.port, 2, (2, 3))
    depart(two)
    barrier(one, b"NOTYET")
    saw(server, "Buyer 2 left")
    three = join(connect, server.port, 3, (2, 3))  # the next number, the place free
    four = join(connect, server.port, 4, None)
    for buyer in (one, three, four):
        buyer.expect(b"BID")
    bid(one, 10)
    bid(three, 11)
    bid(four, 12)
    final(four, b"WON 12 X")
    final(seller, b"SOLD 12 X")


def test_buyer_departure_in_bidding_abstains(server: ServerProcess, connect: Connect) -> None:
    seller, (one, two, three) = auction(connect, server.port, b"2 10 3 X")
    bid(one, 20)
    depart(three)
    bid(two, 30)  # with three gone, this was the last bid awaited
    final(two, b"WON 20 X")
    final(one, b"LOST X")
    final(seller, b"SOLD 20 X")


def test_buyer_departure_after_accepted_binds(server: ServerProcess, connect: Connect) -> None:
    seller, (one, two) = auction(connect, server.port, b"2 10 2 X")
    bid(one, 500)
    depart(one)
    saw(server, "Buyer 1 left the auction")
    bid(two, 30)
    final(two, b"LOST X")
    final(seller, b"SOLD 30 X")  # the departed buyer won and pays


# === end of input (half-close) ===============================================


def test_seller_input_end_before_start_is_a_departure(
    server: ServerProcess, connect: Connect
) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    half_close(seller)
    seller.expect_closed()  # it can never send its request: closed, no final line
    nxt = connect_as(connect, server.port, b"ROLE SELLER")
    nxt.expect(b"REQUEST")


def test_seller_input_end_waiting_buyers_cancels(server: ServerProcess, connect: Connect) -> None:
    """Before bidding, end of input is leaving, as a reset is."""
    seller = seller_leaves_while_buyers_wait(connect, server.port, half_close)
    seller.expect_closed()  # it left: closed, no final line


def test_seller_request_with_input_end_is_cancelled_at_once(
    server: ServerProcess, connect: Connect
) -> None:
    """``printf '1 10 1 X\\n' | nc -N host port``: the request starts the
    auction, and the end of input right behind it cancels it."""
    seller = connect(server.port)
    seller.send(b"1 10 1 X\n")
    half_close(seller)
    seller.expect(b"ROLE SELLER", b"REQUEST", b"START")
    seller.expect_closed()
    nxt = connect_as(connect, server.port, b"ROLE SELLER")
    nxt.expect(b"REQUEST")


def test_seller_input_end_in_bidding_still_gets_result(
    server: ServerProcess, connect: Connect
) -> None:
    """From bidding on, end of input means only that it sends nothing more."""
    seller, (one, two) = auction(connect, server.port, b"2 10 2 X")
    half_close(seller)
    bid(one, 20)
    bid(two, 30)
    final(two, b"WON 20 X")
    final(one, b"LOST X")
    final(seller, b"SOLD 20 X")


def test_buyer_input_end_waiting_buyers_frees_the_place(
    server: ServerProcess, connect: Connect
) -> None:
    open_seller(connect, server.port, b"1 10 2 X")
    one = join(connect, server.port, 1, (1, 2))
    half_close(one)
    one.expect_closed()
    two = join(connect, server.port, 2, (1, 2))
    half_close(two)
    two.expect_closed()


def test_buyer_input_end_in_bidding_abstains_but_gets_result(
    server: ServerProcess, connect: Connect
) -> None:
    seller, (one, two) = auction(connect, server.port, b"2 10 2 X")
    half_close(one)  # can never bid now
    bid(two, 40)  # the last bid awaited
    final(two, b"WON 10 X")
    final(one, b"LOST X")
    final(seller, b"SOLD 10 X")


def test_buyer_input_end_after_accepted_gets_result(
    server: ServerProcess, connect: Connect
) -> None:
    seller, (one, two) = auction(connect, server.port, b"1 10 2 X")
    bid(one, 40)
    half_close(one)
    bid(two, 30)
    final(one, b"WON 40 X")
    final(two, b"LOST X")


# === deadlines ===============================================================


def test_request_timeout(start_server: Start, connect: Connect) -> None:
    server = start_server("--request-timeout", "0.5")
    seller = connect(server.port)
    began = time.monotonic()
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"bad\n")  # an invalid request does not extend the deadline
    seller.expect(b"INVALID request", b"REQUEST")
    final(seller, b"TIMEOUT")
    assert 0.4 <= time.monotonic() - began < 3
    nxt = connect_as(connect, server.port, b"ROLE SELLER")  # the next seller
    nxt.expect(b"REQUEST")


def test_bid_timeout_abstainers_get_their_result(start_server: Start, connect: Connect) -> None:
    server = start_server("--bid-timeout", "0.5")
    seller, (one, two) = auction(connect, server.port, b"2 100 2 X")
    began = time.monotonic()
    bid(one, 150)
    final(one, b"WON 100 X")  # a single bid pays min_price
    assert 0.4 <= time.monotonic() - began < 3
    final(two, b"LOST X")
    final(seller, b"SOLD 100 X")


def test_bid_timeout_without_bids_and_no_request_deadline_after_start(
    start_server: Start, connect: Connect
) -> None:
    """The request deadline ends at START: a seller waiting longer than it
    gets its result, here UNSOLD 0 when no bid arrived."""
    server = start_server("--request-timeout", "0.3", "--bid-timeout", "0.6")
    seller, buyers = auction(connect, server.port, b"1 10 2 X")
    for buyer in buyers:
        final(buyer, b"UNSOLD 0 X")
    final(seller, b"UNSOLD 0 X")


# === framing =================================================================


def test_line_too_long(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"x" * 1025)
    final(seller, b"ERROR line-too-long")
    connect_as(connect, server.port, b"ROLE SELLER")  # it was a departure


def test_line_too_long_flood_still_gets_the_error_line(
    server: ServerProcess, connect: Connect
) -> None:
    """The client keeps sending after the cap: the server drains its input so
    that the final line arrives instead of being destroyed by a reset."""
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"x" * 200_000)
    seller.expect(b"ERROR line-too-long")
    seller.expect_closed()


@ours_only
def test_unterminated_last_line_is_not_a_line(server: ServerProcess, connect: Connect) -> None:
    """Bytes after the last newline when input ends are dropped (docs/PROTOCOL.md)."""
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"1 10 1 X")
    half_close(seller)
    seller.expect_closed()  # a departure before START: no START, no final line


def test_line_too_long_from_a_buyer_abstains(server: ServerProcess, connect: Connect) -> None:
    seller, (one, two) = auction(connect, server.port, b"1 10 2 X")
    bid(one, 10)
    two.send(b"9" * 2000 + b"\n")
    final(two, b"ERROR line-too-long")
    final(one, b"WON 10 X")
    final(seller, b"SOLD 10 X")


def test_line_of_exactly_1024_bytes_is_accepted(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    line = b"1 10 1" + b" " * 1016 + b"X\n"  # runs of spaces separate fields
    assert len(line) == 1024
    seller.send(line)
    seller.expect(b"START")


def test_crlf_is_accepted(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"1 10 1 Old Map\r\n")
    seller.expect(b"START")
    buyer = join(connect, server.port, 1, None)
    buyer.expect(b"BID")
    buyer.send(b"12\r\n")
    buyer.expect(b"ACCEPTED")
    final(buyer, b"WON 12 Old Map")
    final(seller, b"SOLD 12 Old Map")


def test_request_in_single_byte_segments(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    for byte in b"2 100 1 Wolf Pack Sword\r\n":
        seller.send(bytes([byte]))
    seller.expect(b"START")
    buyer = join(connect, server.port, 1, None)
    buyer.expect(b"BID")
    bid(buyer, 100)
    final(seller, b"SOLD 100 Wolf Pack Sword")


def test_several_lines_in_one_segment(server: ServerProcess, connect: Connect) -> None:
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"junk\n\n1 10 2 X\nlate\n")
    seller.expect(b"INVALID request", b"REQUEST", b"INVALID request", b"REQUEST", b"START",
                  b"DONE")
    one, two = fill(connect, server.port, 2)
    one.send(b"nope\n20\n999\n")
    one.expect(b"INVALID bid", b"BID", b"ACCEPTED", b"DONE")
    bid(two, 15)
    final(one, b"WON 20 X")


# === signals =================================================================


def _clients_in(state: str, connect: Connect, port: int) -> list[RawClient]:
    """Return the connected clients of a server brought into ``state``."""
    if state == "waiting-seller":  # a seller still composing its request
        seller = connect(port)
        seller.expect(b"ROLE SELLER", b"REQUEST")
        return [seller]
    seller = open_seller(connect, port, b"2 10 2 X")
    if state == "waiting-buyers":
        return [seller, join(connect, port, 1, (1, 2))]
    one, two = fill(connect, port, 2)
    bid(one, 20)
    return [seller, one, two]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("state", ["waiting-seller", "waiting-buyers", "bidding"])
def test_signal_cancels_everyone_and_exits_0(
    start_server: Start, connect: Connect, tmp_path: Path, signum: int, state: str
) -> None:
    server = start_server()
    clients = _clients_in(state, connect, server.port)
    began = time.monotonic()
    server.signal(signum)
    for client in clients:
        final(client, b"CANCELLED shutdown")
        client.close()
    assert server.wait_exit() == 0
    assert time.monotonic() - began < 1.5  # not at the next timeout
    if OURS and state != "waiting-seller":  # a started auction is recorded as cancelled
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            rows = db.execute("SELECT outcome, reason FROM auctions").fetchall()
        assert rows == [("cancelled", "shutdown")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_when_idle_exits_0(start_server: Start, signum: int) -> None:
    server = start_server()
    began = time.monotonic()
    server.signal(signum)
    assert server.wait_exit() == 0
    assert time.monotonic() - began < 1.5
    assert not any("Traceback" in line for line in server.errors)


# === the console =============================================================


def transcript_text(seller: int, buyers: list[int]) -> list[str]:
    """Return the server text of TRANSCRIPTS.md for the transcript auction."""
    return [
        "Auctioneer is ready for hosting auctions!",
        "",
        f"Seller is connected from 127.0.0.1:{seller}",
        "Auction request received. Now waiting for Buyers.",
        ">> Auction state: waiting-buyers",
        "",
        *(f"Buyer {n} is connected from 127.0.0.1:{port}" for n, port in enumerate(buyers, 1)),
        "Requested number of bidders arrived. Let's start bidding!",
        ">> Auction state: bidding",
        ">> Buyer 1 bid $120",
        ">> Buyer 2 bid $150",
        ">> Buyer 3 bid $180",
        ">> Auction state: finishing",
        ">> Item sold! The highest bid is $180. The actual payment is $150",
        ">> Auction state: waiting-seller",
        "",
    ]


def run_transcript_auction(server: ServerProcess, connect: Connect) -> list[str]:
    """Run the transcript auction, stop the server; return the text it should
    have printed (peers filled in)."""
    seller, buyers = auction(connect, server.port)
    want = transcript_text(local_port(seller), [local_port(b) for b in buyers])
    for buyer, amount in zip(buyers, TRANSCRIPT_BIDS, strict=True):
        bid(buyer, amount)
    for client in (seller, *buyers):
        client.line()
        client.expect_closed()
        client.close()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    return want


SHUTDOWN_LINE = "Shutting down: telling everyone the auction is cancelled."


@ours_only
def test_console_text_is_the_transcript(start_server: Start, connect: Connect) -> None:
    server = start_server("--no-ledger")
    want = run_transcript_auction(server, connect)
    assert server.output == [*want, SHUTDOWN_LINE]
    assert server.errors == []


@ours_only
def test_console_text_with_ledger_names_the_row(
    start_server: Start, connect: Connect, tmp_path: Path
) -> None:
    path = tmp_path / "named.sqlite3"
    server = start_server("--ledger", str(path))
    want = run_transcript_auction(server, connect)
    sold = want.index(">> Auction state: waiting-seller")
    assert server.output == [
        *want[:sold], f">> Auction #1 recorded in {path}", *want[sold:], SHUTDOWN_LINE,
    ]


@ours_only
def test_verbose_adds_lines(start_server: Start, connect: Connect) -> None:
    server = start_server("--no-ledger", "--verbose")
    want = run_transcript_auction(server, connect)
    extra = [line for line in server.output if line.startswith(("[conn ", "Listening on "))]
    assert len(extra) >= 1 + 4  # where it listens, and each connection opened
    assert [line for line in server.output if line not in extra] == [*want, SHUTDOWN_LINE]


@ours_only
def test_quiet_prints_nothing(start_server: Start, connect: Connect) -> None:
    server = start_server("--no-ledger", "--quiet", ready=False)
    # Nothing is printed to wait on: wait until the port takes a connection.
    deadline = time.monotonic() + WAIT
    while True:
        try:
            seller = connect(server.port)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline and server.proc.poll() is None
            continue
        break
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(TRANSCRIPT_REQUEST + b"\n")
    seller.expect(b"START")
    buyers = fill(connect, server.port, 3)
    for buyer, amount in zip(buyers, TRANSCRIPT_BIDS, strict=True):
        bid(buyer, amount)
    final(buyers[2], b"WON 150 " + ITEM)
    final(seller, b"SOLD 150 " + ITEM)
    seller.close()
    for buyer in buyers:
        buyer.close()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert server.output == [] and server.errors == []


@ours_only
def test_console_gone_does_not_stop_the_auction(connect: Connect) -> None:
    """`auc_server PORT | head -1`: standard output breaks after one line."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_BIN), str(port), "--no-ledger"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert b"Auctioneer is ready" in proc.stdout.readline()
        proc.stdout.close()  # the reader goes away: the next print gets EPIPE
        seller = connect(port)
        seller.expect(b"ROLE SELLER", b"REQUEST")
        seller.send(b"1 10 1 Lamp\n")
        seller.expect(b"START")
        buyer = connect(port)
        buyer.expect(b"ROLE BUYER 1", b"BID")
        bid(buyer, 25)
        final(buyer, b"WON 25 Lamp")
        final(seller, b"SOLD 25 Lamp")
        seller.close()
        buyer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


# === options =================================================================


@ours_only
@pytest.mark.parametrize(
    "args",
    [
        [],  # no port
        ["70000"],
        ["port"],
        ["3333", "--bid-timeout", "0"],
        ["3333", "--bid-timeout", "-1"],
        ["3333", "--request-timeout", "abc"],
        ["3333", "--request-timeout", "nan"],
        ["3333", "--max-buyers", "0"],
        ["3333", "--max-buyers", "1.5"],
        ["3333", "--bogus"],
        ["3333", "--quiet", "--verbose"],
        ["3333", "--ledger", "x.sqlite3", "--no-ledger"],
        ["3333", "4444"],
    ],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@ours_only
def test_port_in_use(start_server: Start) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = start_server("--no-ledger", ready=False, port=port)
        status = server.wait_exit()
    assert status != 0
    assert len(server.errors) == 1 and str(port) in server.errors[0]
    assert not any("Traceback" in line for line in server.output + server.errors)


@ours_only
def test_address_not_bindable(start_server: Start) -> None:
    server = start_server("--no-ledger", "--host", "192.0.2.1", ready=False)  # TEST-NET-1
    assert server.wait_exit() != 0
    assert len(server.errors) == 1 and str(server.port) in server.errors[0]
    assert not any("Traceback" in line for line in server.output + server.errors)


@ours_only
def test_host_option(start_server: Start, connect: Connect) -> None:
    server = start_server("--host", "127.0.0.1")
    connect(server.port).expect(b"ROLE SELLER", b"REQUEST")


@ours_only
def test_version() -> None:
    from reactor_auction import __version__

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"auc_server {__version__}"


@ours_only
def test_help_lists_every_option() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--host", "--request-timeout", "--bid-timeout", "--max-buyers", "--ledger",
                   "--no-ledger", "--quiet", "--verbose", "--version", "--help"):
        assert option in result.stdout
