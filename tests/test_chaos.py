"""Chaos: many short auctions in a row against one server, every client
misbehaving at random (a fixed seed, so a failure can be replayed): resets
and half-closes in every state, junk, invalid and over-long lines, bytes one
at a time, refused newcomers, a seller that never asks, a buyer that never
bids. Every auction must end with the results settle() gives for the bids
the server accepted, or with a correct cancellation; at the end the server
holds exactly the descriptors it held at the start.
"""

from __future__ import annotations

import random
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from conftest import RawClient, ServerProcess
from hostile_tools import fd_count, reset, wait_until
from test_server import ours_only

from reactor_auction.outcome import settle
from reactor_auction.protocol import FINAL, Pricing

Start = Callable[..., ServerProcess]

SEED = 20260527
#: At most this many auctions, and no new one after TIME_BUDGET seconds.
AUCTIONS = 40
TIME_BUDGET = 10.0
DEADLINE = "1.0"  # --request-timeout and --bid-timeout, seconds


class Chaos:
    """One server and the bookkeeping of what it must have said."""

    def __init__(self, server: ServerProcess, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.recorded: list[tuple[str, str]] = []  # (item, outcome) expected in the ledger
        self.counts: dict[str, int] = {}  # console lines seen so far, by text
        # Each deadline costs a second of waiting: a few of each, not more.
        self.waits = {"timeout": 2, "silent": 2}

    # -- helpers --------------------------------------------------------------------

    def client(self) -> RawClient:
        client = RawClient(self.server.port)
        if self.rng.random() < 0.2:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def saw(self, text: str) -> None:
        """Wait for one more console line containing ``text``."""
        self.counts[text] = self.counts.get(text, 0) + 1
        self.server.wait_for(text, count=self.counts[text])

    def send(self, client: RawClient, data: bytes) -> None:
        """Send whole, or one byte at a time."""
        if self.rng.random() < 0.15:
            for byte in data:
                client.send(bytes([byte]))
        else:
            client.send(data)

    def seller(self) -> RawClient:
        """Return a connection that became the seller (retry while BUSY: the
        last auction's departures may not be handled yet)."""
        while True:  # (no random choice here: the retries vary from run to run)
            client = RawClient(self.server.port)
            line = client.line()
            if line == b"ROLE SELLER":
                client.expect(b"REQUEST")
                return client
            assert line == b"BUSY", line
            client.expect_closed()
            client.close()

    def spend(self, wait: str) -> bool:
        """Return True if another ``wait`` (a deadline to sit out) is allowed."""
        if self.waits[wait] == 0 or self.rng.random() < 0.5:
            return False
        self.waits[wait] -= 1
        return True

    @staticmethod
    def final(client: RawClient) -> bytes:
        """Return the final line after any DONE replies; the server then closes."""
        while (line := client.line()) == b"DONE":
            pass
        assert line.split(b" ")[0].decode() in FINAL, line
        client.expect_closed()
        client.close()
        return line

    # -- one auction --------------------------------------------------------------------

    def would_be_sellers(self) -> None:
        """Sellers that leave, break the line cap or time out before asking."""
        for _ in range(self.rng.choice([0, 0, 1, 2])):
            client = self.seller()
            way = self.rng.choice(["reset", "eof", "long", "timeout"])
            if way == "timeout" and not self.spend("timeout"):
                way = "reset"
            if way == "reset":
                reset(client.sock)
                self.saw("left before sending an auction request")
            elif way == "eof":
                client.send(b"what?\n")
                client.sock.shutdown(socket.SHUT_WR)
                client.expect(b"INVALID request", b"REQUEST")
                client.expect_closed()  # a departure: no final line
                client.close()
                self.saw("left before sending an auction request")
            elif way == "long":
                self.send(client, b"9" * 1500)
                assert self.final(client) == b"ERROR line-too-long"
            else:
                assert self.final(client) == b"TIMEOUT"

    def run(self, number: int) -> str:
        """Run one auction; return how it ended."""
        rng = self.rng
        self.would_be_sellers()
        seller = self.seller()
        for _ in range(rng.choice([0, 0, 1, 2])):
            self.send(seller, rng.choice([b"3 1 1 X\n", b"1 0 1 X\n", b"\xff\n", b"\n"]))
            seller.expect(b"INVALID request", b"REQUEST")
        kind, min_price, needed = rng.choice([1, 2]), rng.randint(1, 100), rng.randint(1, 4)
        item = f"Lot {number}"
        self.send(seller, f"{kind} {min_price} {needed} {item}\r\n".encode())
        seller.expect(b"START")
        seller_there = True
        seller_input_ended = rng.random() < 0.2  # once bidding started

        # Buyers join; some leave again; the seller may give up meanwhile.
        buyers: dict[RawClient, int] = {}
        bidding = False
        while not bidding:
            buyer = self.client()
            number_line = buyer.line()
            assert number_line.startswith(b"ROLE BUYER "), number_line
            buyers[buyer] = int(number_line.split()[2])
            bidding = buyer.line() == b"BID"
            if bidding:
                break
            roll = rng.random()
            if roll < 0.15:  # a departure: the place is free again, no final line
                if rng.random() < 0.5:
                    reset(buyer.sock)
                else:
                    buyer.sock.shutdown(socket.SHUT_WR)
                    buyer.expect_closed()
                    buyer.close()
                self.saw(f"Buyer {buyers.pop(buyer)} left. The place is free again.")
            elif roll < 0.3:
                self.send(buyer, b"100\n")
                buyer.expect(b"NOTYET")
            elif roll < 0.45:
                # Before bidding, a reset and an end of input are both leaving.
                if rng.random() < 0.5:
                    reset(seller.sock)
                else:
                    seller.sock.shutdown(socket.SHUT_WR)
                    seller.expect_closed()  # no final line
                    seller.close()
                for waiting in buyers:
                    assert self.final(waiting) == b"CANCELLED seller-left"
                self.recorded.append((item, "cancelled"))
                return "cancelled"
        for buyer in list(buyers)[:-1]:
            buyer.expect(b"BID")
        if seller_input_ended:
            seller.sock.shutdown(socket.SHUT_WR)  # from bidding on: it still gets its result

        # Bidding, with refused newcomers in between.
        for _ in range(rng.choice([0, 1, 3])):
            newcomer = self.client()
            if rng.random() < 0.5:
                self.send(newcomer, rng.randbytes(rng.randrange(1, 2000)))
            assert self.final(newcomer) == b"BUSY"
        if seller_there and rng.random() < 0.15:
            reset(seller.sock)
            seller_there = False
        accepted: list[tuple[int, int]] = []
        listening: list[RawClient] = []  # buyers that will read their result
        silent = False
        order = list(buyers)
        rng.shuffle(order)
        for buyer in order:
            way = rng.choice(["bid", "bid", "bid", "invalid", "bid-eof", "bid-reset",
                              "bid-junk", "abstain-eof", "abstain-reset", "silent"])
            if way == "silent" and (silent or not self.spend("silent")):
                way = "bid"
            amount = rng.randint(1, 150)
            if way == "invalid":
                self.send(buyer, rng.choice([b"-5\n", b"1_0\n", b"abc\n", b"0\n", b"\n"]))
                buyer.expect(b"INVALID bid", b"BID")
            if way in ("bid", "invalid", "bid-eof", "bid-reset", "bid-junk"):
                self.send(buyer, b"%d\n" % amount)
                buyer.expect(b"ACCEPTED")
                accepted.append((buyers[buyer], amount))
            if way in ("bid-reset", "abstain-reset"):
                reset(buyer.sock)
                continue
            if way in ("bid-eof", "abstain-eof"):
                buyer.sock.shutdown(socket.SHUT_WR)
            elif way == "bid-junk":
                buyer.send(b"more\n" * rng.randrange(1, 20))
            silent = silent or way == "silent"
            listening.append(buyer)

        outcome = settle(Pricing(kind), min_price, accepted)
        self.recorded.append((item, "sold" if outcome.sold else "unsold"))
        for buyer in listening:
            if outcome.sold:
                want = f"WON {outcome.price} {item}" if buyers[buyer] == outcome.winner \
                    else f"LOST {item}"
            else:
                want = f"UNSOLD {outcome.highest} {item}"
            assert self.final(buyer) == want.encode()
        if seller_there:
            word = f"SOLD {outcome.price}" if outcome.sold else f"UNSOLD {outcome.highest}"
            assert self.final(seller) == f"{word} {item}".encode()
        return "sold" if outcome.sold else "unsold"


@ours_only
def test_chaos_auctions_end_correctly_and_release_every_descriptor(
    start_server: Start, tmp_path: Path
) -> None:
    server = start_server("--request-timeout", DEADLINE, "--bid-timeout", DEADLINE)
    pid = server.proc.pid
    fds_start = fd_count(pid)
    chaos = Chaos(server, random.Random(SEED))
    began = time.monotonic()
    endings: dict[str, int] = {}
    while len(chaos.recorded) < AUCTIONS and time.monotonic() - began < TIME_BUDGET:
        ending = chaos.run(len(chaos.recorded) + 1)
        endings[ending] = endings.get(ending, 0) + 1
    elapsed = time.monotonic() - began
    wait_until(lambda: fd_count(pid) == fds_start, f"descriptors back to {fds_start}")
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        rows = db.execute("SELECT item, outcome FROM auctions ORDER BY id").fetchall()
    print(f"\n[chaos] {len(chaos.recorded)} auctions in {elapsed:.1f} s (seed {SEED}): "
          f"{endings}; server fds {fds_start} at start and at the end")
    assert rows == chaos.recorded
    assert len(chaos.recorded) >= 10
    assert server.errors == []
