"""The harness the machine tests share: it drives an Auction as a shell does,
carrying out every action through ``actions.carry_out``, and checks the
machine's promises about each one as it goes:

- a Send goes to a connection the machine has heard of and not closed, and
  holds exactly one protocol line (it parses as a server line);
- every connection is closed at most once.

It keeps what each connection was sent (until a test reads it, and for
ever), the log events and the records. No network, no clock: time is a
number the test chooses.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from reactor_auction import protocol
from reactor_auction.actions import carry_out
from reactor_auction.auction import Auction
from reactor_auction.events import (
    Action,
    AuctionRecord,
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    Log,
    LogKind,
    State,
)


def peer(conn: int) -> str:
    """Return the made-up address of connection ``conn``."""
    return f"10.0.0.{conn % 250}:{5000 + conn}"


class Harness:
    """Feeds one Auction and is the Executor of its actions."""

    def __init__(self, auction: Auction, now: float = 0.0) -> None:
        self.auction = auction
        self.now = now
        self.seen: set[int] = set()  # every connection the machine heard of
        self.open: set[int] = set()  # ...and not closed yet
        self.went_away: set[int] = set()  # fed InputEnded or Departed
        self.closes: Counter[int] = Counter()
        self.inbox: dict[int, list[str]] = defaultdict(list)  # until read
        self.history: dict[int, list[str]] = defaultdict(list)  # never forgotten
        self.messages: dict[int, list[protocol.ServerMessage]] = defaultdict(list)
        self.logs: list[Log] = []
        self.records: list[AuctionRecord] = []

    # -- feeding ----------------------------------------------------------------

    def __call__(self, event: Event, at: float | None = None) -> list[Action]:
        """Feed one event (at time ``at``, default the harness clock), carry
        out its actions; return them."""
        if at is not None:
            self.now = at
        if isinstance(event, Connected):
            self.seen.add(event.conn)
            self.open.add(event.conn)
        elif isinstance(event, (InputEnded, Departed)):
            self.went_away.add(event.conn)
        actions = self.auction.handle(event, self.now)
        carry_out(actions, self)
        return actions

    def connect(self, conn: int) -> list[str]:
        """Return the lines a new connection ``conn`` is sent."""
        self(Connected(conn, peer(conn)))
        return self.read(conn)

    def say(self, conn: int, line: bytes) -> list[str]:
        """Return the lines ``conn`` is sent after it sends ``line``."""
        self(LineReceived(conn, line))
        return self.read(conn)

    # -- the Executor ---------------------------------------------------------------

    def send(self, conn: int, data: bytes) -> None:
        assert conn in self.seen, f"send to a stranger: {conn} {data!r}"
        assert conn in self.open, f"send after close: {conn} {data!r}"
        assert data.endswith(b"\n") and data.count(b"\n") == 1, data
        self.messages[conn].append(protocol.parse_server_line(data[:-1]))
        line = data[:-1].decode()
        self.inbox[conn].append(line)
        self.history[conn].append(line)

    def close(self, conn: int) -> None:
        assert conn in self.seen, f"close of a stranger: {conn}"
        self.closes[conn] += 1
        assert self.closes[conn] == 1, f"closed twice: {conn}"
        self.open.discard(conn)

    def log(self, log: Log) -> None:
        self.logs.append(log)

    def record(self, record: AuctionRecord) -> None:
        self.records.append(record)

    # -- reading ----------------------------------------------------------------

    def read(self, conn: int) -> list[str]:
        """Return (and forget) the lines sent to ``conn`` so far."""
        return self.inbox.pop(conn, [])

    def closed(self, conn: int) -> bool:
        return self.closes[conn] == 1

    def kinds(self) -> list[LogKind]:
        """Return (and forget) the kinds of the log events so far."""
        kinds = [log.kind for log in self.logs]
        self.logs.clear()
        return kinds

    @property
    def state(self) -> State:
        return self.auction.state

    def assert_all_closed(self) -> None:
        """Every connection the machine heard of was closed exactly once."""
        assert {c for c in self.seen if self.closes[c] != 1} == set()

    def assert_quiet(self) -> None:
        """Nothing was sent to anyone since the last read."""
        assert {c: v for c, v in self.inbox.items() if v} == {}
