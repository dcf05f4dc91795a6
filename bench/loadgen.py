#!/usr/bin/env python3
"""Load generator for the auction protocol (docs/PROTOCOL.md).

One process, one ``selectors`` loop, raw non-blocking sockets, no threads: a
connection costs the generator a socket and one small object, so the server
under test gets the CPU. It measures the server from outside: wall time, the
server's CPU (utime+stime in /proc/PID/stat), its resident memory (VmRSS and
VmHWM in /proc/PID/status) and the system's listen-queue drops
(ListenOverflows/ListenDrops in /proc/net/netstat).

Scenarios (each returns metrics and the list of errors found; a run with errors
is not comparable and is reported as failed):

- ``big``:   one auction, the seller asks for N buyers (2000) who connect at
             once; time from the seller's START to the last result line.
- ``rate``:  back-to-back 3-buyer auctions for a fixed time: auctions/second.
- ``storm``: an auction in bidding while C clients (200) keep reconnecting and
             each gets BUSY: refusals/second and connect-to-BUSY latency; then
             the auction finishes and is checked.
- ``idle``:  N buyers (5000) parked in waiting-buyers: the server's RSS.
- ``scale``: one auction per size (1k, 2k, 5k, 10k buyers): time and RSS.

Every auction is checked: buyers are numbered 1..N, bids are distinct, the
seller and every buyer get the result ``outcome.settle`` gives (one WON at the
right price, the others LOST), and the server closes each connection after
its final line.

    python3 bench/loadgen.py big PORT --pid PID [--n 2000]

prints the metrics as JSON; bench/run.py starts the servers and calls these
functions directly.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reactor_auction.net import raise_fd_limit  # noqa: E402
from reactor_auction.outcome import settle  # noqa: E402
from reactor_auction.protocol import Pricing, encode  # noqa: E402

Addr = tuple[str, int]
Metrics = dict[str, float]

#: Per-scenario ceiling, so a wedged server fails a run instead of hanging it.
TIMEOUT = 180.0
#: Bids are distinct (ties would make the winner depend on arrival order,
#: which the generator cannot see): k -> 1000 + k*7919 mod a prime.
_PRIME = 1_000_003


def bid_of(number: int) -> int:
    """Return the bid buyer ``number`` places (distinct for 1..999_999)."""
    return 1000 + (number * 7919) % _PRIME


class BenchError(Exception):
    """The scenario could not run to the end (timeout, no server)."""


# --- measuring the server from outside ----------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class ServerProbe:
    """Reads a server process's CPU time and memory from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        """Return user+system CPU seconds used so far (all threads)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime

    def _status_kb(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise BenchError(f"no {key} in /proc/{self.pid}/status")

    def rss_kb(self) -> int:
        """Return the resident set size now, in KiB."""
        return self._status_kb("VmRSS")

    def hwm_kb(self) -> int:
        """Return the peak resident set size so far, in KiB."""
        return self._status_kb("VmHWM")

    def threads(self) -> int:
        """Return the number of threads."""
        return self._status_kb("Threads")


def listen_drops() -> int:
    """Return the system's ListenOverflows + ListenDrops counters (TcpExt)."""
    with open("/proc/net/netstat") as f:
        rows = f.read().splitlines()
    total = 0
    for names, values in zip(rows[::2], rows[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            total += int(table.get("ListenOverflows", 0)) + int(table.get("ListenDrops", 0))
    return total


# --- the event loop ------------------------------------------------------------------


class Handler:
    """What a Client reports to; every method may connect or close clients."""

    def on_line(self, client: Client, line: bytes) -> None: ...

    def on_eof(self, client: Client) -> None: ...

    def on_error(self, client: Client, exc: OSError) -> None: ...


class Client:
    """One connection: a socket, its unframed input, and what a handler keeps."""

    __slots__ = ("sock", "buf", "handler", "t0", "number", "final", "closed", "role")

    def __init__(self, sock: socket.socket, handler: Handler, role: str) -> None:
        self.sock = sock
        self.buf = b""
        self.handler = handler
        self.t0 = time.perf_counter()  # when connect() was called
        self.number = 0  # a buyer's number, from ROLE BUYER
        self.final: bytes | None = None  # the final line received
        self.closed = False
        self.role = role


class Driver:
    """A selectors loop over many client connections to one server.

    By default the loop sleeps in the selector between events. With
    ``poll`` it never sleeps: it asks the selector with a zero timeout, over
    and over, on a core of its own. A generator that sleeps adds its own
    wake-up to every exchange with the server; on the 2-core VM that
    measured docs/PERFORMANCE.md a wake-up from idle costs about 35 µs (a
    one-byte ping-pong between two processes on different cores takes 85 µs
    per round trip, 18 µs on the same core),
    and ``rate``, whose auctions are chains of short exchanges, counts it
    as if it were the server's time. Polling takes that out, as a cross-check.
    """

    def __init__(self, addr: Addr, *, poll: bool = False) -> None:
        self.addr = addr
        self.poll = poll
        self.sel = selectors.DefaultSelector()
        self.clients: set[Client] = set()

    def connect(self, handler: Handler, role: str) -> Client:
        """Start a non-blocking connect; return the Client. Raises OSError
        when no socket or port can be had."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(err, os.strerror(err))
        client = Client(sock, handler, role)
        # Readable means the server spoke (so the connection is up) or the
        # connect failed (recv then raises): no need to watch for writable.
        self.sel.register(sock, selectors.EVENT_READ, client)
        self.clients.add(client)
        return client

    @staticmethod
    def send(client: Client, data: bytes) -> None:
        """Send a short line; the socket's buffer is empty, so it goes at once."""
        sent = client.sock.send(data)
        if sent != len(data):
            raise BenchError(f"short send ({sent} of {len(data)} bytes)")

    def close(self, client: Client, *, reset: bool = False) -> None:
        """Close a client; ``reset`` sends an RST (a departure, not an EOF)."""
        if client.closed:
            return
        client.closed = True
        self.sel.unregister(client.sock)
        self.clients.discard(client)
        if reset:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.sock.close()

    def close_all(self) -> None:
        """Close every client still open."""
        for client in list(self.clients):
            self.close(client)
        self.sel.close()

    def run(self, done: Callable[[], bool], timeout: float = TIMEOUT, tick: float = 0.5) -> None:
        """Serve events until ``done()``; checked at least every ``tick`` s.

        Raises BenchError after ``timeout`` seconds.
        """
        deadline = time.perf_counter() + timeout
        select = self.sel.select
        close = self.close
        poll = self.poll
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                raise BenchError(f"timed out after {timeout:.0f} s")
            for key, _ in select(0 if poll else min(left, tick)):
                client: Client = key.data
                if client.closed:
                    continue
                try:
                    data = client.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    close(client)
                    client.handler.on_error(client, exc)
                    continue
                if not data:
                    close(client)
                    client.handler.on_eof(client)
                    continue
                if client.buf:
                    data = client.buf + data
                *lines, client.buf = data.split(b"\n")
                handler = client.handler
                for line in lines:
                    handler.on_line(client, line)


# --- one auction ---------------------------------------------------------------------


@dataclass
class Auction(Handler):
    """One auction driven end to end and checked.

    The seller asks for ``request`` buyers; ``connect`` buyers join (``request``
    unless parking), at most ``window`` handshakes in flight (None: all at
    once, the moment START arrives). With ``hold`` the buyers wait for
    ``release()`` before bidding.
    """

    driver: Driver
    request: int
    connect: int | None = None
    window: int | None = None
    hold: bool = False
    item: str = "bench item"
    min_price: int = 100
    on_start: Callable[[], None] | None = None
    errors: list[str] = field(default_factory=list)
    started_at: float = 0.0
    ended_at: float = 0.0
    seller: Client | None = None
    buyers: list[Client] = field(default_factory=list)
    to_connect: int = 0
    in_flight: int = 0
    parked: int = 0  # buyers told WAITING
    prompted: list[Client] = field(default_factory=list)  # buyers told BID, not bidding yet
    bidding: int = 0  # buyers told BID
    results: int = 0

    def __post_init__(self) -> None:
        if self.connect is None:
            self.connect = self.request

    def begin(self) -> None:
        """Connect the seller."""
        self.seller = self.driver.connect(self, "seller")

    @property
    def done(self) -> bool:
        """True once every participant has its final line (or it failed)."""
        assert self.connect is not None
        return self.results == self.connect + 1 or bool(self.errors)

    def error(self, text: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(text)

    # -- events ---------------------------------------------------------------------

    def on_line(self, client: Client, line: bytes) -> None:
        if client.role == "seller":
            self._seller_line(client, line)
        else:
            self._buyer_line(client, line)

    def on_eof(self, client: Client) -> None:
        if client.final is None:
            self.error(f"{client.role} {client.number}: closed without a final line")
        elif client.buf:
            self.error(f"{client.role} {client.number}: unterminated {client.buf!r} after final")

    def on_error(self, client: Client, exc: OSError) -> None:
        if client.final is None:
            self.error(f"{client.role} {client.number}: {exc!r}")

    def _final(self, client: Client, line: bytes) -> None:
        if client.final is not None:
            self.error(f"{client.role} {client.number}: {line!r} after final {client.final!r}")
            return
        client.final = line
        self.results += 1
        self.ended_at = time.perf_counter()

    def _seller_line(self, seller: Client, line: bytes) -> None:
        if line == b"ROLE SELLER":
            return
        if line == b"REQUEST":
            text = f"{Pricing.SECOND.value} {self.min_price} {self.request} {self.item}\n"
            self.driver.send(seller, text.encode())
        elif line == b"START":
            self.started_at = time.perf_counter()
            assert self.connect is not None
            self.to_connect = self.connect
            if self.on_start is not None:
                self.on_start()
            self._connect_buyers()
        elif line.startswith((b"SOLD ", b"UNSOLD ", b"CANCELLED ")):
            self._final(seller, line)
        else:
            self.error(f"seller: unexpected {line!r}")
            if line == b"BUSY":
                self._final(seller, line)

    def _connect_buyers(self) -> None:
        limit = self.to_connect if self.window is None else self.window - self.in_flight
        for _ in range(min(limit, self.to_connect)):
            self.buyers.append(self.driver.connect(self, "buyer"))
            self.to_connect -= 1
            self.in_flight += 1

    def _buyer_line(self, buyer: Client, line: bytes) -> None:
        if line.startswith(b"ROLE BUYER "):
            buyer.number = int(line[11:])
            self.in_flight -= 1
            if self.to_connect:
                self._connect_buyers()
        elif line.startswith(b"WAITING "):
            self.parked += 1
        elif line == b"BID":
            self.bidding += 1
            if self.hold:
                self.prompted.append(buyer)
            else:
                self._bid(buyer)
        elif line == b"ACCEPTED":
            pass
        elif line.startswith((b"WON ", b"LOST ", b"UNSOLD ", b"CANCELLED ")):
            self._final(buyer, line)
        else:
            self.error(f"buyer {buyer.number}: unexpected {line!r}")
            if line == b"BUSY":
                self._final(buyer, line)

    def release(self) -> None:
        """Held buyers bid now."""
        self.hold = False
        prompted, self.prompted = self.prompted, []
        for buyer in prompted:
            self._bid(buyer)

    def _bid(self, buyer: Client) -> None:
        self.driver.send(buyer, b"%d\n" % bid_of(buyer.number))

    # -- the check --------------------------------------------------------------------

    def check(self, *, cancelled: str | None = None) -> list[str]:
        """Return every way the results differ from the protocol's outcome rule."""
        errors = list(self.errors)
        numbers = sorted(b.number for b in self.buyers)
        if numbers != list(range(1, len(self.buyers) + 1)):
            errors.append(f"buyer numbers are not 1..{len(self.buyers)}")
        if cancelled is not None:
            want = encode("CANCELLED", cancelled).rstrip(b"\n")
            wrong = [b.number for b in self.buyers if b.final != want]
            if wrong:
                errors.append(f"{len(wrong)} buyers did not get {want!r}, e.g. buyer {wrong[0]}")
            return errors
        bids = [(k, bid_of(k)) for k in range(1, self.request + 1)]
        outcome = settle(Pricing.SECOND, self.min_price, bids)
        item = self.item
        assert self.seller is not None
        if self.seller.final != encode("SOLD", outcome.price, item).rstrip(b"\n"):
            errors.append(f"seller got {self.seller.final!r}, want SOLD {outcome.price}")
        won = encode("WON", outcome.price, item).rstrip(b"\n")
        lost = encode("LOST", item).rstrip(b"\n")
        mistaken = [
            b for b in self.buyers if b.final != (won if b.number == outcome.winner else lost)
        ]
        if mistaken:
            errors.append(
                f"{len(mistaken)} buyers got a wrong result, e.g. buyer {mistaken[0].number}: "
                f"{mistaken[0].final!r} (winner {outcome.winner} pays {outcome.price})"
            )
        return errors


# --- scenarios ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What one scenario run measured, and what was wrong with it."""

    metrics: Metrics
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "errors": self.errors, "ok": not self.errors}


class _Measure:
    """Server CPU and listen drops between two moments."""

    def __init__(self, probe: ServerProbe | None) -> None:
        self.probe = probe
        self.drops0 = listen_drops()
        self.cpu0 = probe.cpu() if probe else 0.0
        self.rss0 = probe.rss_kb() if probe else 0

    def mark(self) -> None:
        """Restart the CPU count here."""
        if self.probe:
            self.cpu0 = self.probe.cpu()

    def finish(self, metrics: Metrics) -> Metrics:
        """Add server_cpu_s, peak_rss_mb, start_rss_mb and listen_drops."""
        if self.probe:
            metrics["server_cpu_s"] = self.probe.cpu() - self.cpu0
            metrics["peak_rss_mb"] = self.probe.hwm_kb() / 1024
            metrics["start_rss_mb"] = self.rss0 / 1024
        metrics["listen_drops"] = float(listen_drops() - self.drops0)
        return metrics


def _one_auction(addr: Addr, probe: ServerProbe | None, n: int, window: int | None,
                 timeout: float, poll: bool) -> Outcome:
    driver = Driver(addr, poll=poll)
    measure = _Measure(probe)
    auction = Auction(driver, n, window=window, on_start=measure.mark)
    try:
        auction.begin()
        driver.run(lambda: auction.done, timeout)
    finally:
        driver.close_all()
    elapsed = auction.ended_at - auction.started_at
    metrics = measure.finish({"buyers": n, "time_s": elapsed, "us_per_buyer": elapsed / n * 1e6})
    return Outcome(metrics, auction.check())


def big(addr: Addr, probe: ServerProbe | None = None, *, n: int = 2000,
        timeout: float = TIMEOUT, poll: bool = False) -> Outcome:
    """One auction of ``n`` buyers who all connect the moment START arrives;
    time from START to the last result line."""
    return _one_auction(addr, probe, n, None, timeout, poll)


def scale(addr: Addr, probe: ServerProbe | None = None, *, n: int = 1000,
          window: int = 1000, timeout: float = TIMEOUT, poll: bool = False) -> Outcome:
    """One auction of ``n`` buyers, at most ``window`` handshakes in flight
    (10,000 at once would overflow any 4096 backlog and time the kernel's SYN
    retries instead of the server)."""
    return _one_auction(addr, probe, n, window, timeout, poll)


def rate(addr: Addr, probe: ServerProbe | None = None, *, duration: float = 5.0,
         buyers: int = 3, timeout: float = TIMEOUT, poll: bool = False) -> Outcome:
    """Back-to-back auctions of ``buyers`` buyers for ``duration`` seconds;
    the next seller connects when the last result of the previous one
    arrives. The auction under way at the end is finished and counted."""
    driver = Driver(addr, poll=poll)
    measure = _Measure(probe)
    errors: list[str] = []
    completed = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < duration:
            auction = Auction(driver, buyers, item=f"lot {completed + 1}")
            auction.begin()
            driver.run(lambda: auction.done, timeout)  # noqa: B023 (run before the next)
            errors = auction.check()
            if errors:
                break
            completed += 1
        elapsed = time.perf_counter() - start
    finally:
        driver.close_all()
    metrics = measure.finish({"auctions": completed, "auctions_per_s": completed / elapsed})
    if completed:
        metrics["cpu_ms_per_auction"] = metrics.get("server_cpu_s", 0.0) / completed * 1000
    if not completed and not errors:
        errors.append("no auction completed")
    return Outcome(metrics, errors)


class _Storm(Handler):
    """Clients that connect, expect BUSY, wait for the close, and go again."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.running = False
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.live = 0

    def start(self, clients: int) -> None:
        self.running = True
        for _ in range(clients):
            self._go()

    def _go(self) -> None:
        self.driver.connect(self, "storm")
        self.live += 1

    def on_line(self, client: Client, line: bytes) -> None:
        if line == b"BUSY" and client.final is None:
            self.latencies.append(time.perf_counter() - client.t0)
            client.final = line
        elif len(self.errors) < 20:
            self.errors.append(f"storm client: unexpected {line!r}")

    def on_eof(self, client: Client) -> None:
        self.live -= 1
        if client.final is None and len(self.errors) < 20:
            self.errors.append("storm client: closed without BUSY")
        if self.running:
            self._go()

    def on_error(self, client: Client, exc: OSError) -> None:
        self.on_eof(client)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * fraction + 0.999999) - 1))]


def storm(addr: Addr, probe: ServerProbe | None = None, *, clients: int = 200,
          buyers: int = 10, duration: float = 3.0, timeout: float = TIMEOUT,
          poll: bool = False) -> Outcome:
    """``clients`` clients reconnect for ``duration`` seconds while an auction
    of ``buyers`` is in bidding (bids held back); every one must get BUSY.
    Then the buyers bid and the auction must end correctly."""
    driver = Driver(addr, poll=poll)
    measure = _Measure(probe)
    auction = Auction(driver, buyers, hold=True)
    crowd = _Storm(driver)
    try:
        auction.begin()
        driver.run(lambda: auction.bidding == buyers or auction.done, timeout)
        measure.mark()
        start = time.perf_counter()
        crowd.start(clients)
        driver.run(lambda: time.perf_counter() - start >= duration or bool(crowd.errors),
                   timeout, tick=0.05)
        crowd.running = False
        elapsed = time.perf_counter() - start
        refused = len(crowd.latencies)
        cpu = probe.cpu() - measure.cpu0 if probe else 0.0
        driver.run(lambda: crowd.live == 0, timeout)
        auction.release()
        driver.run(lambda: auction.done, timeout)
    finally:
        driver.close_all()
    latencies = crowd.latencies or [0.0]
    metrics = measure.finish({
        "busy": refused,
        "busy_per_s": refused / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
    })
    metrics["server_cpu_s"] = cpu
    errors = crowd.errors + auction.check()
    if not refused:
        errors.append("no BUSY received")
    return Outcome(metrics, errors)


def idle(addr: Addr, probe: ServerProbe | None = None, *, n: int = 5000,
         window: int = 1000, timeout: float = TIMEOUT, poll: bool = False) -> Outcome:
    """Park ``n`` buyers in waiting-buyers (the seller asks for n+1) and read
    the server's RSS; then the seller leaves (RST) and every buyer must get
    ``CANCELLED seller-left``."""
    driver = Driver(addr, poll=poll)
    measure = _Measure(probe)
    auction = Auction(driver, n + 1, connect=n, window=window)
    metrics: Metrics = {"buyers": n}
    try:
        auction.begin()
        driver.run(lambda: auction.parked == n or bool(auction.errors), timeout)
        if probe:
            rss = probe.rss_kb()
            metrics["rss_mb"] = rss / 1024
            metrics["kb_per_buyer"] = (rss - measure.rss0) / n
            metrics["threads"] = probe.threads()
        assert auction.seller is not None
        seller = auction.seller
        driver.close(seller, reset=True)
        auction.results += 1  # the seller leaves: it gets no final line
        seller.final = b""
        driver.run(lambda: auction.done, timeout)
    finally:
        driver.close_all()
    return Outcome(measure.finish(metrics), auction.check(cancelled="seller-left"))


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "big": big, "rate": rate, "storm": storm, "idle": idle, "scale": scale,
}


def run_scenario(name: str, addr: Addr, pid: int | None, **params: Any) -> Outcome:
    """Run one scenario against the server at ``addr`` (process ``pid``, if
    known, for CPU and memory). A run that cannot finish is an Outcome with
    errors, never an exception."""
    raise_fd_limit()
    probe = ServerProbe(pid) if pid else None
    gc.disable()  # the generator's own pauses are noise
    try:
        return SCENARIOS[name](addr, probe, **params)
    except (BenchError, OSError) as exc:
        return Outcome({}, [f"{type(exc).__name__}: {exc}"])
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Run one scenario; print its metrics and errors as JSON. Exit 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--pid", type=int, help="the server's process id (for CPU and RSS)")
    parser.add_argument("--n", type=int, help="buyers (big, idle, scale)")
    parser.add_argument("--duration", type=float, help="seconds (rate, storm)")
    parser.add_argument("--clients", type=int, help="reconnecting clients (storm)")
    parser.add_argument("--poll", action="store_true",
                        help="poll the selector instead of sleeping between events")
    args = parser.parse_args(argv)
    params: dict[str, Any] = {"poll": args.poll}
    for key in ("n", "duration", "clients"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    outcome = run_scenario(args.scenario, (args.host, args.port), args.pid, **params)
    print(json.dumps(outcome.as_dict(), indent=2))
    return 0 if not outcome.errors else 1


if __name__ == "__main__":
    sys.exit(main())
