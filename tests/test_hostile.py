"""Process tests that attack the server: clients that flood, reset,
trickle, half-close, leave junk unread, storm it with connections, or use up
its descriptors; and a kill -9 with an instant restart.

Measured numbers (memory, CPU, latency) are printed: run with ``-s``.
"""

from __future__ import annotations

import random
import select
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WAIT, RawClient, ServerProcess, free_port, server_command
from hostile_tools import (
    cpu_seconds,
    fd_count,
    flood,
    reset,
    rss_kib,
    small_receive_buffer,
    wait_until,
)
from test_reactor import run_until
from test_server import (
    OURS,
    bid,
    connect_as,
    depart,
    fill,
    final,
    half_close,
    join,
    open_seller,
    ours_only,
    saw,
)

from reactor_auction.auction import Auction
from reactor_auction.events import LogKind, State
from reactor_auction.loop import Loop
from reactor_auction.service import LINES_PER_TURN, AuctionService

Start = Callable[..., ServerProcess]
Connect = Callable[[int], RawClient]


def quick_auction(connect: Connect, port: int) -> None:
    """Run a complete one-buyer auction and check its results."""
    seller = open_seller(connect, port, b"1 10 1 Probe")
    (buyer,) = fill(connect, port, 1)
    bid(buyer, 42)
    for client, line in ((seller, b"SOLD 42 Probe"), (buyer, b"WON 42 Probe")):
        final(client, line)
        client.close()  # so the server need not linger


def flooder(port: int) -> socket.socket:
    """Return a connection that will not read (small receive buffer)."""
    sock = socket.socket()
    small_receive_buffer(sock)
    sock.connect(("127.0.0.1", port))
    return sock


def flood_all(socks: list[socket.socket], probe: Callable[[], None]) -> list[tuple[int, str]]:
    """Flood every socket at once (a thread each) while ``probe`` runs in
    this thread until they all were disconnected; return their results."""
    results: list[tuple[int, str]] = [(0, "")] * len(socks)

    def run(i: int) -> None:
        results[i] = flood(socks[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(socks))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        probe()
    for thread in threads:
        thread.join(WAIT)
    return results


# --- output cap: a flood that never reads --------------------------------------------


def test_non_reading_flooders_are_disconnected_and_memory_stays_flat(
    start_server: Start, connect: Connect
) -> None:
    """Clients send short lines as fast as they can and never read the
    replies: each is disconnected as a departure once its unread output
    passes --max-output; the others are served meanwhile, and the server's
    memory is what it was."""
    server = start_server()
    pid = server.proc.pid
    quick_auction(connect, server.port)  # warm up: every code path loaded
    rss_before = rss_kib(pid)

    # A seller that floods before its request: a departure, the next seller comes.
    (seller_flood,) = flood_all([flooder(server.port)], lambda: None)
    saw(server, "left before sending an auction request")

    # Buyers that flood while waiting, while the seller checks its replies come.
    seller = open_seller(connect, server.port, b"2 100 4 Ballast")
    delays: list[float] = []

    def probe() -> None:
        began = time.monotonic()
        seller.send(b"ping\n")
        seller.expect(b"DONE")
        delays.append(time.monotonic() - began)

    socks = [flooder(server.port) for _ in range(3)]
    for n, sock in enumerate(socks, 1):  # in order: each is told its number
        assert sock.recv(64).startswith(b"ROLE BUYER %d\n" % n)
    buyer_floods = flood_all(socks, probe)
    saw(server, "Buyer 3 left. The place is free again.")

    # A buyer floods after its bid was accepted: it departs, its bid stands.
    buyers = [join(connect, server.port, n, (n - 3, 4)) for n in (4, 5, 6)]
    buyers.append(join(connect, server.port, 7, None))
    for buyer in buyers:
        buyer.expect(b"BID")
    bid(buyers[0], 300)
    (bidder_flood,) = flood_all([buyers[0].sock], lambda: None)
    saw(server, "Buyer 4 left the auction.")
    for buyer, amount in zip(buyers[1:], (200, 150, 120), strict=True):
        bid(buyer, amount)
    final(seller, b"SOLD 200 Ballast")
    for buyer in buyers[1:]:
        final(buyer, b"LOST Ballast")

    quick_auction(connect, server.port)
    rss_after = rss_kib(pid)
    floods = [seller_flood, *buyer_floods, bidder_flood]
    print(
        f"\n[flood] 5 non-reading flooders sent {[sent >> 10 for sent, _ in floods]} KiB, "
        f"each ended by {sorted({how for _, how in floods})}; "
        f"server RSS {rss_before} KiB before, {rss_after} KiB after "
        f"(+{rss_after - rss_before} KiB); seller's round trip during the flood: "
        f"max {max(delays) * 1000:.1f} ms over {len(delays)} pings"
    )
    assert all(how in ("ConnectionResetError", "BrokenPipeError") for _, how in floods)
    assert rss_after - rss_before < 2048
    # Handling a whole 64 KiB read of one-byte lines at once stalls everyone
    # for about 250 ms; LINES_PER_TURN keeps the others' turns short.
    assert max(delays) < 0.15


def test_seller_churn_leaves_no_garbage(start_server: Start, connect: Connect) -> None:
    """10,000 sellers connect and reset at once. Each arms a request deadline
    minutes away that is cancelled at once; the server's memory stays flat
    (cancelled timers are purged, not kept until due)."""
    server = start_server("--no-ledger")
    pid = server.proc.pid

    def churn(count: int) -> None:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
            sock.recv(64)  # ROLE SELLER (or BUSY, if the last reset is not handled yet)
            reset(sock)
        connect_as(connect, server.port, b"ROLE SELLER").close()  # all handled

    churn(500)
    rss_before = rss_kib(pid)
    began = time.monotonic()
    churn(10_000)
    elapsed = time.monotonic() - began
    rss_after = rss_kib(pid)
    print(f"\n[churn] 10000 seller connect+reset in {elapsed:.1f} s: server RSS "
          f"{rss_before} KiB before, {rss_after} KiB after (+{rss_after - rss_before} KiB)")
    assert rss_after - rss_before < 1024


@ours_only
def test_polling_stops_once_the_traffic_does(start_server: Start, connect: Connect) -> None:
    """After a burst of quick exchanges has opened the polling window
    (--poll-us), an idle server goes back to sleeping: it spends no CPU."""
    server = start_server("--no-ledger", "--poll-us", "2000")
    pid = server.proc.pid
    for round_ in range(20):  # quick exchanges: the window opens
        seller = open_seller(connect, server.port, b"1 10 1 Lot%d" % round_)
        (buyer,) = fill(connect, server.port, 1)
        bid(buyer, 12)
        final(buyer, b"WON 12 Lot%d" % round_)
        final(seller, b"SOLD 12 Lot%d" % round_)
    cpu_before = cpu_seconds(pid)
    time.sleep(1.0)  # a measurement window, not a synchronisation
    cpu = cpu_seconds(pid) - cpu_before
    print(f"\n[poll] idle server after 20 auctions: {cpu * 1000:.0f} ms CPU in 1 s")
    assert cpu < 0.05


# --- resets ----------------------------------------------------------------------


@ours_only
def test_reset_in_every_state_is_a_departure_never_a_crash(
    start_server: Start, connect: Connect, tmp_path: Path
) -> None:
    """A TCP reset at every moment a connection can be in: before the first
    reply is read, mid-line, in each state and role, while finishing, on a
    BUSY refusal and while the server lingers after a final line. Each is a
    departure; the server never logs an error and serves on."""
    ledger = tmp_path / "ledger.sqlite3"
    server = start_server("--ledger", str(ledger))
    port = server.port

    def rst(client: RawClient, console: str, count: int = 1) -> None:
        depart(client)
        server.wait_for(console, count=count)

    # waiting-seller: before reading anything, then halfway through a request.
    rst(connect(port), "left before sending an auction request")
    seller = connect(port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"2 100 3 Half")
    rst(seller, "left before sending an auction request", count=2)

    # waiting-buyers: a buyer before reading its number; the seller.
    seller = open_seller(connect, port, b"2 100 2 Gone")
    rst(connect(port), "Buyer 1 left. The place is free again.")
    waiting = join(connect, port, 2, (1, 2))
    rst(seller, "Seller left while waiting for Buyers.")
    final(waiting, b"CANCELLED seller-left")

    # bidding: a refused newcomer, the seller, a buyer mid-bid, one after ACCEPTED.
    seller = open_seller(connect, port, b"1 100 4 Lot")
    buyers = fill(connect, port, 4)
    rst(connect(port), "Server is busy (bidding)")
    rst(seller, "Seller left the auction.")
    buyers[0].send(b"99")
    rst(buyers[0], "Buyer 1 left the auction.")
    bid(buyers[1], 500)
    rst(buyers[1], "Buyer 2 left the auction.")

    # finishing (the ledger is locked): a newcomer, a buyer; then the lock goes.
    lock = sqlite3.connect(ledger, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        bid(buyers[2], 400)
        bid(buyers[3], 300)
        server.wait_for("Ledger is busy")
        rst(connect(port), "Server is busy (finishing)")
        rst(buyers[2], "Buyer 3 left the auction.")
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    # The bid of the buyer that left after ACCEPTED still wins.
    buyers[3].expect(b"LOST Lot")
    depart(buyers[3])  # while the server lingers after the final line


    quick_auction(connect, port)
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT outcome, reason, winner, price FROM auctions").fetchall()
    assert rows == [
        ("cancelled", "seller-left", None, 0), ("sold", "", 2, 500), ("sold", "", 1, 42)
    ]
    assert server.errors == []


# --- a connection storm during bidding -------------------------------------------


def test_300_garbage_connections_during_bidding(start_server: Start, connect: Connect) -> None:
    """300 connections arrive during the bidding and misbehave (junk, binary,
    over-long lines, resets, silence); each gets BUSY and a clean close, and
    the auction completes with the right results."""
    server = start_server("--verbose" if OURS else "--no-ledger")
    rng = random.Random(5)
    seller = open_seller(connect, server.port, b"2 100 2 Storm")
    one, two = fill(connect, server.port, 2)
    fds_before = fd_count(server.proc.pid)

    junk: list[socket.socket] = []
    for i in range(300):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        kind = i % 5
        if kind == 0:
            sock.sendall(rng.randbytes(rng.randrange(1, 3000)))
        elif kind == 1:
            sock.sendall(b"1 1 1 x\n" * rng.randrange(1, 50))
        elif kind == 2:
            sock.sendall(b"x" * 5000)  # over-long, no terminator
        elif kind == 3:
            reset(sock)
            continue
        if rng.random() < 0.5:
            sock.shutdown(socket.SHUT_WR)
        junk.append(sock)
        if i == 150:
            bid(one, 150)
    bid(two, 120)
    for client, line in ((seller, b"SOLD 120 Storm"), (one, b"WON 120 Storm"),
                         (two, b"LOST Storm")):
        final(client, line)
        client.close()

    for sock in junk:  # each was refused: BUSY, then an orderly close
        sock.settimeout(WAIT)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data == b"BUSY\n"
        sock.close()
    quick_auction(connect, server.port)
    if OURS:
        server.wait_for("] closed (", count=300 + 3 + 2)
    wait_until(lambda: fd_count(server.proc.pid) <= fds_before - 3, "descriptors released")
    print(f"\n[storm] 300 junk connections during bidding; server fds {fds_before} "
          f"before, {fd_count(server.proc.pid)} after the auction's 3 closed")


# --- deadlines are totals, not idle timers -----------------------------------------


def trickle_until_reply(sock: socket.socket, data: bytes, pace: float = 0.02) -> float:
    """Send ``data`` one byte at a time, ``pace`` seconds apart, until the
    server sends something; return the seconds that took. The pause between
    bytes is the attack itself; each one also watches for the reply."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    began = time.monotonic()
    for byte in data:
        sock.send(bytes([byte]))
        readable, _, _ = select.select([sock], [], [], pace)
        if readable:
            return time.monotonic() - began
    raise AssertionError("the server never replied to the trickle")




@pytest.mark.parametrize(
    "trickle", [b"2 100 3 " + b"x" * 1000, b"x\n" * 500], ids=["one-endless-line", "bad-lines"]
)
def test_byte_trickling_seller_still_hits_the_request_timeout(
    start_server: Start, connect: Connect, trickle: bytes
) -> None:
    server = start_server("--request-timeout", "0.5")
    seller = connect(server.port)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    # The replies to bad lines are read with the final one below.
    began = time.monotonic()
    while True:
        trickle_until_reply(seller.sock, trickle)
        line = seller.line()
        if line == b"TIMEOUT":
            break
        assert line == b"INVALID request"
        seller.expect(b"REQUEST")
    elapsed = time.monotonic() - began
    seller.expect_closed()
    print(f"\n[trickle] seller trickling {trickle[:8]!r}... got TIMEOUT after {elapsed:.2f} s "
          f"(--request-timeout 0.5)")
    assert 0.45 <= elapsed < 1.5


def test_byte_trickling_buyer_still_hits_the_bid_timeout(
    start_server: Start, connect: Connect
) -> None:
    server = start_server("--bid-timeout", "0.5")
    seller = open_seller(connect, server.port, b"2 100 2 Drip")
    one, two = fill(connect, server.port, 2)
    bid(one, 200)
    began = time.monotonic()
    trickle_until_reply(two.sock, b"1" * 1000)
    elapsed = time.monotonic() - began
    final(two, b"LOST Drip")  # its unfinished line never became a bid
    final(one, b"WON 100 Drip")
    final(seller, b"SOLD 100 Drip")
    print(f"\n[trickle] buyer trickling digits: bidding closed after {elapsed:.2f} s "
          f"(--bid-timeout 0.5)")
    assert 0.45 <= elapsed < 1.5


# --- half-closes and unread junk ---------------------------------------------------


def test_half_closed_seller_and_buyers_get_their_results(
    start_server: Start, connect: Connect
) -> None:
    """From bidding on, a client that half-closes (``nc -N``) still reads its
    result; a buyer's last line and its end of input may arrive together."""
    server = start_server()
    seller = connect(server.port)
    seller.send(b"2 100 2 Half Shut\n")
    seller.expect(b"ROLE SELLER", b"REQUEST", b"START")
    one, two = fill(connect, server.port, 2)
    half_close(seller)
    one.send(b"150\n")
    half_close(one)
    one.expect(b"ACCEPTED")
    half_close(two)  # without a bid: it abstains, and is still told
    final(seller, b"SOLD 100 Half Shut")
    final(one, b"WON 100 Half Shut")
    final(two, b"LOST Half Shut")


def read_to_eof(sock: socket.socket) -> bytes:
    """Return everything until an orderly end of stream; a reset fails the test."""
    sock.settimeout(WAIT)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_client_with_unread_junk_still_receives_its_result(
    start_server: Start, connect: Connect
) -> None:
    """A buyer leaves 4000 replies unread (its receive window is full, so
    they wait in the server's kernel send queue) and sends its deciding bid
    with 200 KB of junk behind it. Closing at once with that junk unread
    would reset the connection and destroy the queued replies and the
    result; the server drains the junk instead, so all of it arrives, then
    an orderly end of stream."""
    server = start_server()
    seller = open_seller(connect, server.port, b"1 100 3 Noise")
    one = join(connect, server.port, 1, (1, 3))
    two = socket.socket()
    small_receive_buffer(two)
    two.connect(("127.0.0.1", server.port))
    three = join(connect, server.port, 3, None)
    for buyer in (one, three):
        buyer.expect(b"BID")
    two.sendall(b"j\n" * 2000)  # INVALID bid, BID each: it reads none of them
    bid(one, 150)
    bid(three, 120)
    two.sendall(b"160\n" + (b"j" * 999 + b"\n") * 200)  # settles; the junk is in flight
    saw(server, "Auction state: waiting-seller")  # the server let go before it reads
    data = read_to_eof(two)
    assert data == (
        b"ROLE BUYER 2\nWAITING 2 3\nBID\n" + b"INVALID bid\nBID\n" * 2000
        + b"ACCEPTED\nWON 160 Noise\n"
    )
    final(one, b"LOST Noise")
    final(seller, b"SOLD 160 Noise")


# --- descriptors run out ---------------------------------------------------------

#: Runs argv[2:] with RLIMIT_NOFILE soft = hard = argv[1] (exec: same pid).
LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


@ours_only
def test_descriptor_exhaustion_keeps_the_cpu_idle_and_recovers(
    connect: Connect, tmp_path: Path
) -> None:
    """Under RLIMIT_NOFILE 64 (hard, so it cannot be raised), 200 clients
    connect at once. Accepting fails with EMFILE: the server warns once,
    pauses its listener instead of spinning, still serves the connection it
    has, and serves a new auction once the clients are gone."""
    limit = 64
    port = free_port()
    argv = server_command(port, "--verbose", "--ledger", str(tmp_path / "ledger.sqlite3"))
    server = ServerProcess([sys.executable, "-c", LIMITED, str(limit), *argv], port, cwd=tmp_path)
    try:
        server.wait_for("Auctioneer is ready")
        pid = server.proc.pid
        warning = server.wait_for("--max-buyers 1000", stderr=True)
        assert warning.endswith("using 1.")  # 64 descriptors are kept in reserve
        fds_idle = fd_count(pid)
        seller = connect(port)
        seller.expect(b"ROLE SELLER", b"REQUEST")

        clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                   for _ in range(200)]
        wait_until(lambda: fd_count(pid) >= limit, "the server to run out of descriptors")
        server.wait_for("out of file descriptors", stderr=True)
        cpu_before = cpu_seconds(pid)
        time.sleep(1.0)  # a measurement window, not a synchronisation
        cpu = cpu_seconds(pid) - cpu_before
        fds_exhausted = fd_count(pid)
        seller.send(b"not yet\n")  # the connections it has are still served
        seller.expect(b"INVALID request", b"REQUEST")

        for client in clients:
            client.close()
        server.wait_for("] closed (", count=len(clients))
        assert fd_count(pid) == fds_idle + 1  # the seller's
        seller.send(b"1 10 1 Phoenix\n")
        seller.expect(b"START")
        (buyer,) = fill(connect, port, 1)
        bid(buyer, 11)
        final(seller, b"SOLD 11 Phoenix")
        final(buyer, b"WON 11 Phoenix")
        warnings = [line for line in server.errors if "out of file descriptors" in line]
        print(f"\n[fds] RLIMIT_NOFILE {limit}: {fds_idle} fds idle, {fds_exhausted} while "
              f"200 clients wait; server CPU {cpu:.3f} s over 1.0 s of exhaustion; "
              f"{len(warnings)} warning line(s); recovered and sold")
        assert cpu < 0.3
        assert fds_exhausted == limit
        assert 1 <= len(warnings) <= 3  # once per shortage, not at every retry
    finally:
        server.stop()


# --- kill -9 and restart --------------------------------------------------------


def test_kill_9_and_restart_on_the_same_port_at_once(
    start_server: Start, connect: Connect, tmp_path: Path
) -> None:
    """SO_REUSEADDR: with connections to the old process in every TCP state
    a kill leaves behind, a new server binds the port at once, and the result
    that was told before the kill is in the ledger."""
    first = start_server()
    port = first.port
    quick_auction(connect, port)  # its closed connections linger in TIME_WAIT
    seller = open_seller(connect, port, b"1 10 2 Orphan")
    join(connect, port, 1, (1, 2))
    first.proc.kill()
    first.wait_exit()
    second = start_server(port=port)  # fails the test unless it prints "ready"
    seller.expect_closed()
    quick_auction(connect, second.port)
    if OURS:
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            rows = db.execute("SELECT item, outcome FROM auctions").fetchall()
        assert rows == [("Probe", "sold"), ("Probe", "sold")]


# --- an internal error ----------------------------------------------------------

#: Runs the server with a bug planted in the auction machine: a bid raises.
BUGGY = """
import sys
sys.path.insert(0, sys.argv[1])
from reactor_auction import protocol, server

def broken(line):
    raise RuntimeError("planted bug")

protocol.parse_bid = broken
sys.exit(server.main(sys.argv[2:]))
"""


@ours_only
def test_bug_in_the_auction_cancels_everyone_and_exits_70(
    connect: Connect, tmp_path: Path
) -> None:
    port = free_port()
    root = str(Path(__file__).resolve().parent.parent)
    server = ServerProcess(
        [sys.executable, "-c", BUGGY, root, str(port), "--no-ledger"], port, cwd=tmp_path
    )
    try:
        server.wait_for("Auctioneer is ready")
        seller = open_seller(connect, port, b"1 10 2 Bug")
        one, two = fill(connect, port, 2)
        one.send(b"15\n")
        for client in (one, two, seller):
            final(client, b"CANCELLED server-error")
            client.close()  # the server's linger ends at once
        assert server.wait_exit() == 70
        assert any("internal error" in line and "planted bug" in line for line in server.errors)
        assert not any("Traceback" in line for line in server.errors)
    finally:
        server.stop()


# --- in-process: the service contains a failing connection -----------------------


def test_a_failing_console_closes_one_connection_and_logs_one_line() -> None:
    """A fault while the shell serves one client (here: the log it writes
    fails once) closes that client only, with one error line; the auction
    goes on with the next seller."""
    logged: list[LogKind] = []
    faults = [LogKind.INVALID_REQUEST]

    def emit(kind: LogKind, args: tuple[object, ...]) -> None:
        if kind in faults:
            faults.remove(kind)
            raise RuntimeError("console bug")
        logged.append(kind)

    loop = Loop()
    machine = Auction()
    service = AuctionService(loop, machine, emit, ledger=None)
    port = service.listen("127.0.0.1", 0).port
    first = RawClient(port)
    run_until(loop, lambda: service.connections == 1)
    first.expect(b"ROLE SELLER", b"REQUEST")
    first.send(b"nonsense\n")
    run_until(loop, lambda: service.connections == 0)
    assert logged.count(LogKind.CONNECTION_ERROR) == 1  # one line...
    assert logged.count(LogKind.SELLER_LEFT_EARLY) == 1  # ...and a departure of that client only
    first.expect(b"INVALID request", b"REQUEST")  # the machine's replies were carried out
    first.expect_closed()

    second = RawClient(port)
    run_until(loop, lambda: service.connections == 1)
    second.expect(b"ROLE SELLER", b"REQUEST")
    second.send(b"1 10 1 Survivor\n")
    run_until(loop, lambda: bool(select.select([second.sock], [], [], 0)[0]))
    second.expect(b"START")
    buyer = RawClient(port)
    run_until(loop, lambda: service.connections == 2)
    buyer.expect(b"ROLE BUYER 1", b"BID")
    buyer.send(b"12\n")
    run_until(loop, lambda: machine.state is State.WAITING_SELLER)
    buyer.expect(b"ACCEPTED", b"WON 12 Survivor")
    second.expect(b"SOLD 12 Survivor")
    for client in (first, second, buyer):
        client.close()
    loop.close()


def test_a_failing_console_on_a_deferred_batch_of_lines_closes_that_connection_only() -> None:
    """Lines beyond LINES_PER_TURN are handled on a later turn, by a deferred
    call rather than a call of the transport: a fault there is contained
    the same way, closing that client only."""
    logged: list[LogKind] = []
    invalid = 0

    def emit(kind: LogKind, args: tuple[object, ...]) -> None:
        nonlocal invalid
        if kind is LogKind.INVALID_REQUEST:
            invalid += 1
            if invalid == LINES_PER_TURN + 1:  # the first line of the second batch
                raise RuntimeError("console bug")
        logged.append(kind)

    loop = Loop()
    service = AuctionService(loop, Auction(), emit, ledger=None)
    port = service.listen("127.0.0.1", 0).port
    flooding = RawClient(port)
    run_until(loop, lambda: service.connections == 1)
    flooding.expect(b"ROLE SELLER", b"REQUEST")
    flooding.send(b"nonsense\n" * (2 * LINES_PER_TURN))  # arrives in one read
    run_until(loop, lambda: service.connections == 0)
    assert invalid == LINES_PER_TURN + 1  # the fault ended it there
    assert logged.count(LogKind.CONNECTION_ERROR) == 1
    assert logged.count(LogKind.SELLER_LEFT_EARLY) == 1
    for _ in range(LINES_PER_TURN + 1):
        flooding.expect(b"INVALID request", b"REQUEST")
    flooding.expect_closed()

    seller = RawClient(port)  # the service goes on
    run_until(loop, lambda: service.connections == 1)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    for client in (flooding, seller):
        client.close()
    loop.close()
