"""Property-based tests (hypothesis) of the pure parts the server is built
on: whatever bytes arrive, split however, the framing yields only lines or
LineTooLong, and the auction machine answers only with protocol lines; and a
stateful test of the machine against random joins, lines, half-closes,
departures, clock jumps, ledger commits and shutdowns, checking its promises
after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from machine_tools import Harness, peer

from reactor_auction import protocol
from reactor_auction.auction import Auction
from reactor_auction.events import (
    Action,
    AuctionRecord,
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    LineTooLong,
    Recorded,
    Send,
    Shutdown,
    State,
    Tick,
)
from reactor_auction.framing import LineBuffer
from reactor_auction.framing import LineTooLong as FramingTooLong
from reactor_auction.outcome import settle

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- framing ---------------------------------------------------------------------


def reference_lines(data: bytes, max_line: int) -> tuple[list[bytes], bool]:
    """Return (the lines in ``data``, whether a line breaks the cap), by the
    rule of PROTOCOL.md applied to the whole input at once."""
    lines: list[bytes] = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return lines, len(data) - start >= max_line
        if end + 1 - start > max_line:
            return lines, True
        line = data[start:end]
        lines.append(line[:-1] if line.endswith(b"\r") else line)
        start = end + 1


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Return ``data`` cut at the given offsets (taken modulo its length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@FAST
@given(
    data=st.binary(max_size=400) | st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b" "]),
                                            max_size=200).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    max_line=st.integers(min_value=1, max_value=40),
)
def test_framing_yields_only_lines_or_line_too_long(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    """Fed in any split, the buffer yields exactly the lines of the whole
    input, each within the cap, then LineTooLong if and only if one breaks it."""
    buffer = LineBuffer(max_line)
    got: list[bytes] = []
    too_long = False
    try:
        for chunk in split(data, cuts):
            buffer.feed(chunk)
            got.extend(buffer.lines())
    except FramingTooLong:
        too_long = True
    assert (got, too_long) == reference_lines(data, max_line)
    assert all(len(line) < max_line and b"\n" not in line for line in got)


# --- the machine answers only with protocol lines ----------------------------------


class Caller(Harness):
    """The shared Harness, plus the caller's own promise: nothing is fed for
    a connection after its Close."""

    def __call__(self, event: Event, at: float | None = None) -> list[Action]:
        conn = getattr(event, "conn", None)
        if not isinstance(event, Connected):
            assert conn is None or conn in self.open
        return super().__call__(event, at)


#: Lines that move the machine along, mixed with arbitrary bytes.
USEFUL_LINES = st.sampled_from(
    [b"1 10 2 Map", b"2 5 1 Old Map", b"2 100 3 X", b"7", b"120", b"99", b"0", b""]
)


@FAST
@given(
    chunks=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5),
                  st.binary(max_size=60) | USEFUL_LINES.map(lambda line: line + b"\n")),
        max_size=40,
    ),
)
def test_any_bytes_into_the_machine_yield_only_protocol_lines(
    chunks: list[tuple[int, bytes]]
) -> None:
    """Bytes from up to six connections go through the framing into the
    machine: it never raises, and every reply parses as a server line."""
    shell = Caller(Auction(max_buyers=3))
    buffers: dict[int, LineBuffer] = {}
    for who, data in chunks:
        if who not in buffers:
            buffers[who] = LineBuffer(64)
            shell(Connected(who, peer(who)))
        if who not in shell.open:
            continue
        buffer = buffers[who]
        buffer.feed(data)
        try:
            while who in shell.open and (line := buffer.next_line()) is not None:
                shell(LineReceived(who, line))
        except FramingTooLong:
            shell(LineTooLong(who))
        if shell.auction.state is State.FINISHING:
            shell(Recorded())


# --- the machine under random events ------------------------------------------------

LINES = st.one_of(
    st.sampled_from([b"1 10 2 Map", b"2 10 3 Lamp", b"2 50 1 Vase", b"1 1 1 Pin"]),  # requests
    st.sampled_from([b"3 10 2 X", b"1 0 1 X", b"2 10 9 X", b"1 10 2", b"x y z w"]),  # bad ones
    st.integers(min_value=1, max_value=200).map(lambda n: b"%d" % n),  # bids
    st.sampled_from([b"0", b"-5", b"1_0", b"+7", "١٢".encode(), b"12 ", b" 12"]),  # bad bids
    st.binary(max_size=20),  # junk
)


class AuctionMachine(RuleBasedStateMachine):
    """A correct caller feeding the machine random events; the invariants
    are its promises (PROTOCOL.md)."""

    @initialize()
    def start(self) -> None:
        self.shell = Caller(Auction(max_buyers=3, request_timeout=5.0, bid_timeout=5.0))
        self.next_conn = 1
        self.input_ended: set[int] = set()
        self.new_auction()

    def new_auction(self) -> None:
        """Forget the last auction's bookkeeping."""
        self.seller: int | None = None
        self.request: protocol.Request | None = None
        self.buyers: dict[int, int] = {}  # conn -> buyer number
        self.accepted: list[tuple[int, int]] = []  # (buyer number, amount) in order
        self.pending: AuctionRecord | None = None

    # -- feeding ------------------------------------------------------------------

    def feed(self, event: Event) -> list[Action]:
        shell = self.shell
        records = len(shell.records)
        actions = shell(event)
        for action in actions:
            if isinstance(action, Send):
                self.observe(action.conn, protocol.parse_server_line(action.data[:-1]), event)
        if len(shell.records) > records:
            self.pending = shell.records[-1]
            self.check_record(self.pending)
        return actions

    def observe(self, conn: int, message: protocol.ServerMessage, event: Event) -> None:
        """Follow the auction from what the machine says."""
        if message.keyword == "ROLE SELLER":
            self.seller = conn
        elif message.keyword == "START":
            assert isinstance(event, LineReceived)
            self.request = protocol.parse_request(event.line, self.shell.auction.max_buyers)
        elif message.keyword == "ROLE BUYER":
            self.buyers[conn] = message.numbers[0]
            assert message.numbers[0] not in list(self.buyers.values())[:-1], "number reused"
        elif message.keyword == "ACCEPTED":
            assert isinstance(event, LineReceived)
            self.accepted.append((self.buyers[conn], protocol.parse_bid(event.line)))

    def check_record(self, record: AuctionRecord) -> None:
        """The record of a settled auction follows settle() on the accepted bids."""
        request = self.request
        assert request is not None
        assert [(b.buyer, b.amount) for b in record.bids] == self.accepted
        if record.outcome == "cancelled":
            return
        outcome = settle(request.pricing, request.min_price, self.accepted)
        assert record.outcome == ("sold" if outcome.sold else "unsold")
        assert (record.winner, record.price, record.highest) == (
            outcome.winner, outcome.price, outcome.highest
        )

    def pick(self, data: st.DataObject, conns: set[int]) -> int:
        return data.draw(st.sampled_from(sorted(conns)))

    def talking(self) -> set[int]:
        """Connections that may still send lines."""
        return self.shell.open - self.input_ended

    # -- rules ----------------------------------------------------------------------

    @rule()
    def connect(self) -> None:
        conn = self.next_conn
        self.next_conn += 1
        self.feed(Connected(conn, peer(conn)))

    @precondition(lambda self: self.talking())
    @rule(data=st.data(), line=LINES)
    def line(self, data: st.DataObject, line: bytes) -> None:
        self.feed(LineReceived(self.pick(data, self.talking()), line))

    @precondition(lambda self: self.seller in self.talking() and self.request is None)
    @rule(request=st.sampled_from([b"1 10 3 Map", b"2 10 3 Lamp", b"2 50 2 Vase", b"1 1 1 Pin"]))
    def seller_requests(self, request: bytes) -> None:
        """A valid request, so that auctions start often enough."""
        assert self.seller is not None
        self.feed(LineReceived(self.seller, request))

    @precondition(lambda self: self.shell.auction.state is State.WAITING_BUYERS)
    @rule()
    def buyers_arrive(self) -> None:
        """As many newcomers as the request still needs."""
        assert self.request is not None
        for _ in range(self.request.buyers - self.shell.auction.buyers_connected):
            self.connect()

    @precondition(lambda self: self.shell.auction.state is State.BIDDING)
    @rule(amounts=st.lists(st.integers(min_value=1, max_value=120), min_size=3, max_size=3))
    def everyone_bids(self, amounts: list[int]) -> None:
        """Every buyer that can still bid does, in order."""
        bidders = [c for c in self.buyers if c in self.talking()]
        for conn, amount in zip(bidders, amounts, strict=False):
            if conn in self.talking():
                self.feed(LineReceived(conn, b"%d" % amount))

    @precondition(lambda self: set(self.buyers) & self.talking())
    @rule(data=st.data(), amount=st.integers(min_value=1, max_value=120))
    def buyer_bids(self, data: st.DataObject, amount: int) -> None:
        """A valid bid from a buyer (before BID it is answered NOTYET)."""
        self.feed(LineReceived(self.pick(data, set(self.buyers) & self.talking()), b"%d" % amount))

    @precondition(lambda self: self.talking())
    @rule(data=st.data())
    def line_too_long(self, data: st.DataObject) -> None:
        self.feed(LineTooLong(self.pick(data, self.talking())))

    @precondition(lambda self: self.talking())
    @rule(data=st.data())
    def input_ends(self, data: st.DataObject) -> None:
        conn = self.pick(data, self.talking())
        self.input_ended.add(conn)
        self.feed(InputEnded(conn))

    @precondition(lambda self: self.shell.open)
    @rule(data=st.data())
    def departs(self, data: st.DataObject) -> None:
        self.feed(Departed(self.pick(data, self.shell.open)))

    @rule(seconds=st.sampled_from([0.0, 0.5, 2.0, 4.9, 5.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        """The clock jumps; the shell's timer fires once the deadline is due."""
        self.shell.now += seconds
        deadline = self.shell.auction.deadline
        if deadline is not None and self.shell.now >= deadline:
            self.feed(Tick())

    @precondition(lambda self: self.pending is not None)
    @rule()
    def recorded(self) -> None:
        """The ledger committed: every participant gets its final line."""
        record = self.pending
        assert record is not None
        participants = {c for c in (self.seller, *self.buyers) if c in self.shell.open}
        assert participants == self.shell.open  # newcomers were turned away at once
        self.feed(Recorded())
        self.check_finals(record, participants)
        self.new_auction()

    @rule()
    def shutdown(self) -> None:
        self.feed(Shutdown())

    def check_finals(self, record: AuctionRecord, participants: set[int]) -> None:
        """Each participant still there got the one final line the record says."""
        assert self.request is not None
        item = self.request.item
        for conn in participants:
            last = self.shell.messages[conn][-1]
            assert conn not in self.shell.open
            if record.outcome == "cancelled":
                assert record.reason is not None
                want = protocol.cancelled(record.reason)
            elif conn == self.seller:
                want = protocol.sold(record.price, item) if record.outcome == "sold" else (
                    protocol.unsold(record.highest, item))
            elif record.outcome == "sold":
                won = self.buyers[conn] == record.winner
                want = protocol.won(record.price, item) if won else protocol.lost(item)
            else:
                want = protocol.unsold(record.highest, item)
            assert last == protocol.parse_server_line(want[:-1])

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def nobody_new_is_taken_once_stopping(self) -> None:
        """In stopping every connection has had its Close."""
        if self.shell.auction.state is State.STOPPING:
            assert self.shell.open == set()

    @invariant()
    def at_most_one_final_line_each_and_it_is_the_last(self) -> None:
        for conn, messages in self.shell.messages.items():
            finals = [i for i, m in enumerate(messages) if m.final]
            assert len(finals) <= 1, (conn, messages)
            if finals:
                assert finals[0] == len(messages) - 1 and conn not in self.shell.open

    @invariant()
    def at_most_one_winner(self) -> None:
        """One WON line at most per sold auction, none for any other."""
        sold = sum(record.outcome == "sold" for record in self.shell.records)
        won = sum(m.keyword == "WON" for messages in self.shell.messages.values() for m in messages)
        assert won <= sold
        assert all(r.winner is None or r.outcome == "sold" for r in self.shell.records)

    @invariant()
    def nobody_is_left_open_between_auctions(self) -> None:
        """In waiting-seller the only open connection is a seller composing
        its request; every other connection got its Close."""
        if self.shell.auction.state is State.WAITING_SELLER:
            assert self.shell.open <= ({self.seller} if self.seller is not None else set())

    def teardown(self) -> None:
        """However it ended, a shutdown (and its commit) closes everyone exactly once."""
        if not hasattr(self, "shell"):
            return
        self.feed(Shutdown())
        if self.pending is not None:
            self.recorded()
        assert self.shell.open == set()
        self.shell.assert_all_closed()


AuctionMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_auction_machine_keeps_its_promises = AuctionMachine.TestCase
