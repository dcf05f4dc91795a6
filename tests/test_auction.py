"""Unit tests of the sans-IO auction machine through its public API:
``Auction.handle(event, now)``, ``state``, ``deadline`` and ``settle()``.

Every entry of ``TRANSITIONS`` has a test marked ``@covers(state, event, role)``;
``test_every_transition_is_covered`` checks that none is missing, and the
illegal pairs (not in the table) are checked to raise ``AuctionError``.
No network, no clock: time is a number the tests choose.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import pytest
from machine_tools import Harness, peer

from reactor_auction import protocol
from reactor_auction.auction import TRANSITIONS, Auction, AuctionError, Role, Transition
from reactor_auction.events import (
    Connected,
    Departed,
    Event,
    InputEnded,
    LineReceived,
    LineTooLong,
    LogKind,
    Recorded,
    Shutdown,
    State,
    Tick,
)
from reactor_auction.outcome import Outcome, settle
from reactor_auction.protocol import CancelReason, Pricing

WS, WB, BIDDING, FINISHING, STOPPING = (
    State.WAITING_SELLER,
    State.WAITING_BUYERS,
    State.BIDDING,
    State.FINISHING,
    State.STOPPING,
)
SELLER, BUYER, NEW, NONE = Role.SELLER, Role.BUYER, Role.NEW, Role.NONE

#: Conn ids: the seller is 1, buyers are 11, 12, 13..., strangers 90+.
S = 1
B1, B2, B3, B4 = 11, 12, 13, 14
#: The log kind of each party's departure after the auction started.
LEFT = {
    S: LogKind.SELLER_LEFT, B1: LogKind.BUYER_LEFT, B2: LogKind.BUYER_LEFT,
    B3: LogKind.BUYER_LEFT,
}
REQUEST_TIMEOUT = 10.0
BID_TIMEOUT = 20.0
T0 = 100.0


# --- the harness -------------------------------------------------------------


def harness(
    max_buyers: int = 10,
    request_timeout: float = REQUEST_TIMEOUT,
    bid_timeout: float = BID_TIMEOUT,
) -> Harness:
    """Return a Harness around a fresh Auction, its clock at T0."""
    machine = Auction(
        max_buyers=max_buyers, request_timeout=request_timeout, bid_timeout=bid_timeout
    )
    return Harness(machine, now=T0)


# --- reaching each state -----------------------------------------------------


def with_seller(h: Harness) -> None:
    assert h.connect(S) == ["ROLE SELLER", "REQUEST"]


def started(h: Harness, request: bytes = b"2 100 3 WolfPackSword") -> None:
    with_seller(h)
    assert h.say(S, request) == ["START"]
    assert h.state is WB


def waiting_buyers(h: Harness) -> None:
    """Three buyers wanted, two (B1, B2) connected."""
    started(h)
    assert h.connect(B1) == ["ROLE BUYER 1", "WAITING 1 3"]
    assert h.connect(B2) == ["ROLE BUYER 2", "WAITING 2 3"]


def bidding(h: Harness, request: bytes = b"2 100 3 WolfPackSword") -> list[int]:
    """Every buyer wanted is connected and was sent BID; return their conns."""
    started(h, request)
    needed = int(request.split()[2])
    conns = [B1 + i for i in range(needed)]
    sent = {conn: h.connect(conn) for conn in conns}
    for conn in conns:
        sent[conn] += h.read(conn)
        assert sent[conn][-1] == "BID"
    assert h.state is BIDDING
    return conns


def finishing(h: Harness) -> None:
    """The transcript's bids are in; the result waits for the ledger."""
    bidding(h)
    for conn, amount in ((B1, b"120"), (B2, b"150"), (B3, b"180")):
        assert h.say(conn, amount) == ["ACCEPTED"]
    assert h.state is FINISHING
    assert len(h.records) == 1
    h.kinds()


def run_auction(
    h: Harness, request: bytes, bids: list[tuple[int, bytes]], buyers: int | None = None
) -> dict[int, list[str]]:
    """Run a whole auction; return every line each connection was sent."""
    with_seller(h)
    assert h.say(S, request) == ["START"]
    count = int(request.split()[2]) if buyers is None else buyers
    everything: dict[int, list[str]] = {S: ["ROLE SELLER", "REQUEST", "START"]}
    for i in range(count):
        everything[B1 + i] = h.connect(B1 + i)
    for conn, amount in bids:
        everything[conn] += h.say(conn, amount)
    assert h.state is FINISHING
    h(Recorded())
    for conn, lines in h.inbox.items():
        everything[conn] += lines
    h.inbox.clear()
    assert h.state is WS
    h.assert_all_closed()
    return everything


# --- coverage of the transition table ----------------------------------------

COVERED: set[tuple[State, type, Role]] = set()
F = TypeVar("F", bound=Callable[..., None])


def covers(*keys: tuple[State, type, Role]) -> Callable[[F], F]:
    """Mark a test as checking the given TRANSITIONS entries."""

    def mark(test: F) -> F:
        for key in keys:
            assert key in TRANSITIONS, f"not a transition: {key}"
            COVERED.add(key)
        return test

    return mark


# === waiting-seller ==========================================================


@covers((WS, Connected, NEW))
def test_ws_first_connection_becomes_seller_and_starts_request_deadline() -> None:
    h = harness()
    assert h.state is WS and h.auction.deadline is None
    assert h.connect(S) == ["ROLE SELLER", "REQUEST"]
    assert h.auction.deadline == T0 + REQUEST_TIMEOUT
    assert h.kinds() == [LogKind.SELLER_CONNECTED]
    assert h.logs == [] and not h.closed(S)


@covers((WS, Connected, NEW))
def test_ws_busy_while_a_seller_composes() -> None:
    h = harness()
    with_seller(h)
    assert h.connect(90) == ["BUSY"]
    assert h.closed(90) and not h.closed(S)
    assert h.state is WS


@covers((WS, LineReceived, SELLER))
def test_ws_valid_request_starts_the_auction() -> None:
    h = harness()
    with_seller(h)
    h.kinds()
    assert h.say(S, b"  2   100 3  Wolf Pack Sword  ") == ["START"]
    assert h.state is WB
    assert h.auction.deadline is None  # no deadline while buyers gather
    assert h.kinds() == [LogKind.REQUEST_ACCEPTED, LogKind.STATE]
    assert h.logs == []


@covers((WS, LineReceived, SELLER))
@pytest.mark.parametrize(
    "line", [b"", b"some wrong input", b"3 100 3 X", b"2 0 3 X", b"2 100 11 X", b"2 100 3 \xff"]
)
def test_ws_invalid_request_reprompts(line: bytes) -> None:
    h = harness(max_buyers=10)
    with_seller(h)
    h.kinds()
    for _ in range(3):  # any number of times
        assert h.say(S, line) == ["INVALID request", "REQUEST"]
    assert h.state is WS
    assert h.kinds() == [LogKind.INVALID_REQUEST] * 3
    assert h.auction.deadline == T0 + REQUEST_TIMEOUT  # an invalid line does not extend it
    assert h.say(S, b"1 5 1 X") == ["START"]


@covers((WS, LineTooLong, SELLER))
def test_ws_seller_line_too_long_is_a_departure() -> None:
    h = harness()
    with_seller(h)
    h.kinds()
    h(LineTooLong(S))
    assert h.read(S) == ["ERROR line-too-long"] and h.closed(S)
    assert h.kinds() == [LogKind.LINE_TOO_LONG, LogKind.SELLER_LEFT_EARLY]
    assert h.state is WS and h.auction.deadline is None
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]  # the next seller


@covers((WS, InputEnded, SELLER), (WS, Departed, SELLER))
@pytest.mark.parametrize("event", [InputEnded, Departed])
def test_ws_seller_leaving_before_start_frees_the_seat(event: type) -> None:
    h = harness()
    with_seller(h)
    h.kinds()
    h(event(S))
    assert h.read(S) == [] and h.closed(S)  # it went away: no line, just Close
    assert h.kinds() == [LogKind.SELLER_LEFT_EARLY]
    assert h.state is WS and h.auction.deadline is None
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]
    h(Shutdown())
    h.assert_all_closed()


@covers((WS, Tick, NONE))
def test_ws_request_deadline() -> None:
    h = harness()
    with_seller(h)
    h.kinds()
    h(Tick(), at=T0 + REQUEST_TIMEOUT - 0.001)  # early tick: nothing
    h.assert_quiet()
    assert not h.closed(S) and h.kinds() == []
    h(Tick(), at=T0 + REQUEST_TIMEOUT)
    assert h.read(S) == ["TIMEOUT"] and h.closed(S)
    assert h.kinds() == [LogKind.SELLER_TIMEOUT]
    assert h.state is WS and h.auction.deadline is None
    # The next seller gets a fresh deadline from its own arrival.
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]
    assert h.auction.deadline == T0 + 2 * REQUEST_TIMEOUT


def test_ws_request_after_the_deadline_is_too_late_even_before_the_tick() -> None:
    """The shell may deliver a line before its timer fires in the same turn:
    the deadline still comes first, and the late request is dropped."""
    h = harness()
    with_seller(h)
    h(LineReceived(S, b"2 100 3 WolfPackSword"), at=T0 + REQUEST_TIMEOUT)
    assert h.read(S) == ["TIMEOUT"] and h.closed(S)
    assert h.state is WS and h.records == []


def test_bi_bid_after_the_deadline_is_too_late_even_before_the_tick() -> None:
    h = harness()
    bidding(h)
    assert h.say(B1, b"120") == ["ACCEPTED"]
    deadline = h.auction.deadline
    assert deadline is not None
    h(LineReceived(B2, b"999"), at=deadline)
    # The bidding closed first: B2's line is answered DONE, not accepted.
    assert h.state is FINISHING
    assert h.read(B2) == ["DONE"]
    assert [(b.buyer, b.amount) for b in h.records[0].bids] == [(1, 120)]


@covers((WS, Tick, NONE))
def test_ws_tick_without_seller_does_nothing() -> None:
    h = harness()
    assert h(Tick(), at=T0 + 1000) == []
    assert h.state is WS


@covers((WS, Shutdown, NONE))
def test_ws_shutdown_tells_a_composing_seller_without_recording() -> None:
    h = harness()
    with_seller(h)
    h(Shutdown())
    assert h.read(S) == ["CANCELLED shutdown"] and h.closed(S)
    assert h.records == []  # nothing started, nothing to record
    assert h.state is STOPPING and h.auction.deadline is None
    assert h.connect(2) == ["BUSY"]  # stopping: nobody new is taken
    assert h(Shutdown()) == []  # a second shutdown changes nothing
    h.assert_all_closed()


@covers((WS, Shutdown, NONE))
def test_ws_shutdown_without_anyone() -> None:
    h = harness()
    assert h(Shutdown()) == []
    assert h.state is STOPPING
    assert h.connect(2) == ["BUSY"]


# === waiting-buyers ==========================================================


@covers((WB, Connected, NEW))
def test_wb_buyers_join_until_the_count_then_bidding_starts() -> None:
    h = harness()
    started(h)
    h.kinds()
    assert h.connect(B1) == ["ROLE BUYER 1", "WAITING 1 3"]
    assert h.connect(B2) == ["ROLE BUYER 2", "WAITING 2 3"]
    assert h.read(B1) == []  # WAITING goes only to the one that joined
    assert h.auction.buyers_connected == 2
    assert h.state is WB
    h(Connected(B3, peer(B3)), at=T0 + 5)
    assert h.read(B3) == ["ROLE BUYER 3", "BID"]
    assert h.read(B1) == ["BID"] and h.read(B2) == ["BID"]
    assert h.state is BIDDING
    assert h.auction.deadline == T0 + 5 + BID_TIMEOUT
    assert h.kinds() == [
        LogKind.BUYER_CONNECTED, LogKind.BUYER_CONNECTED, LogKind.BUYER_CONNECTED,
        LogKind.BIDDING_STARTS, LogKind.STATE,
    ]


@covers((WB, Connected, NEW))
def test_wb_single_buyer_auction_starts_at_once() -> None:
    h = harness()
    started(h, b"1 5 1 X")
    assert h.connect(B1) == ["ROLE BUYER 1", "BID"]
    assert h.state is BIDDING


@covers((WB, LineReceived, SELLER))
def test_wb_seller_line_is_done() -> None:
    h = harness()
    waiting_buyers(h)
    assert h.say(S, b"2 100 3 Another") == ["DONE"]
    assert h.say(S, b"") == ["DONE"]
    assert h.state is WB


@covers((WB, LineReceived, BUYER))
def test_wb_buyer_line_is_notyet_and_never_a_bid() -> None:
    h = harness()
    waiting_buyers(h)
    assert h.say(B1, b"500") == ["NOTYET"]
    assert h.say(B1, b"junk") == ["NOTYET"]
    assert h.state is WB
    h.connect(B3)
    h.inbox.clear()
    # The 500 sent early did not count: B1 still bids, and a lower bid wins the price.
    assert h.say(B1, b"120") == ["ACCEPTED"]
    assert h.say(B2, b"150") == ["ACCEPTED"]
    assert h.say(B3, b"180") == ["ACCEPTED"]
    assert [b.amount for b in h.records[0].bids] == [120, 150, 180]


@covers((WB, LineTooLong, SELLER))
def test_wb_seller_line_too_long_cancels() -> None:
    h = harness()
    waiting_buyers(h)
    h.kinds()
    h(LineTooLong(S))
    assert h.read(S) == ["ERROR line-too-long"] and h.closed(S)
    assert h.state is FINISHING
    assert h.kinds() == [
        LogKind.LINE_TOO_LONG, LogKind.SELLER_LEFT_WAITING, LogKind.CANCELLED, LogKind.STATE,
    ]
    record = h.records[-1]
    assert (record.outcome, record.reason) == ("cancelled", CancelReason.SELLER_LEFT)
    h.assert_quiet()  # buyers are told only after the record is committed
    h(Recorded())
    assert h.read(B1) == ["CANCELLED seller-left"] and h.read(B2) == ["CANCELLED seller-left"]
    assert h.state is WS
    h.assert_all_closed()


@covers((WB, LineTooLong, BUYER))
def test_wb_buyer_line_too_long_frees_its_place() -> None:
    h = harness()
    waiting_buyers(h)
    h.kinds()
    h(LineTooLong(B2))
    assert h.read(B2) == ["ERROR line-too-long"] and h.closed(B2)
    assert h.kinds() == [LogKind.LINE_TOO_LONG, LogKind.BUYER_LEFT_WAITING]
    assert h.state is WB and h.auction.buyers_connected == 1
    assert h.connect(B3) == ["ROLE BUYER 3", "WAITING 2 3"]  # numbers are never reused


@covers((WB, InputEnded, BUYER), (WB, Departed, BUYER))
@pytest.mark.parametrize("event", [InputEnded, Departed])
def test_wb_buyer_leaving_frees_its_place(event: type) -> None:
    h = harness()
    waiting_buyers(h)
    h.kinds()
    h(event(B2))
    assert h.read(B2) == [] and h.closed(B2)
    assert h.kinds() == [LogKind.BUYER_LEFT_WAITING]
    assert h.auction.buyers_connected == 1 and h.state is WB
    assert h.connect(B3) == ["ROLE BUYER 3", "WAITING 2 3"]
    h(event(B1))
    assert h.connect(B4) == ["ROLE BUYER 4", "WAITING 2 3"]
    assert h.connect(15) == ["ROLE BUYER 5", "BID"]
    assert h.read(B3) == ["BID"] and h.read(B4) == ["BID"]
    assert h.read(B1) == [] and h.read(B2) == []  # those who left get nothing
    assert h.state is BIDDING


@covers((WB, InputEnded, SELLER), (WB, Departed, SELLER))
@pytest.mark.parametrize("event", [InputEnded, Departed])
def test_wb_seller_leaving_cancels_after_the_record(event: type) -> None:
    """Before bidding, end of input is leaving as a reset is."""
    h = harness()
    waiting_buyers(h)
    h.kinds()
    h(event(S), at=T0 + 3)
    assert h.closed(S) and h.read(S) == []
    assert h.state is FINISHING
    assert h.kinds() == [LogKind.SELLER_LEFT_WAITING, LogKind.CANCELLED, LogKind.STATE]
    record = h.records[-1]
    assert record.outcome == "cancelled" and record.reason is CancelReason.SELLER_LEFT
    assert record.buyers_requested == 3 and record.buyers_connected == 2
    assert record.winner is None and record.price == 0 and record.bids == ()
    assert record.ended_at == T0 + 3
    h.assert_quiet()
    assert h.connect(90) == ["BUSY"]  # finishing
    h.kinds()
    h(Recorded())
    assert h.read(B1) == ["CANCELLED seller-left"]
    assert h.read(B2) == ["CANCELLED seller-left"]
    assert h.state is WS and h.kinds() == [LogKind.STATE]
    h.assert_all_closed()
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]  # back to waiting-seller


@covers((WB, InputEnded, SELLER))
def test_wb_seller_input_ended_with_its_request_cancels_before_any_buyer() -> None:
    """``printf '1 10 1 X\\n' | nc -N``: the request and the end of input
    arrive together; the auction starts and is cancelled at once."""
    h = harness()
    started(h, b"1 10 1 X")
    h(InputEnded(S))
    assert h.closed(S) and h.read(S) == []
    (record,) = h.records
    assert (record.outcome, record.reason) == ("cancelled", CancelReason.SELLER_LEFT)
    assert (record.buyers_requested, record.buyers_connected) == (1, 0)
    h(Recorded())
    assert h.state is WS
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]


@covers((WB, Tick, NONE))
def test_wb_tick_does_nothing() -> None:
    h = harness()
    waiting_buyers(h)
    assert h(Tick(), at=T0 + 10_000) == []
    assert h.state is WB


@covers((WB, Shutdown, NONE))
def test_wb_shutdown_records_then_cancels() -> None:
    h = harness()
    waiting_buyers(h)
    h.kinds()
    h(Shutdown())
    h.assert_quiet()  # the record comes first
    assert h.state is FINISHING
    assert [(r.outcome, r.reason) for r in h.records] == [("cancelled", CancelReason.SHUTDOWN)]
    assert h.kinds() == [LogKind.CANCELLED, LogKind.STATE]
    h(Recorded())
    for conn in (S, B1, B2):
        assert h.read(conn) == ["CANCELLED shutdown"]
    h.assert_all_closed()
    assert h.state is STOPPING  # not waiting-seller: nobody new is taken
    assert h.kinds() == []  # the console shows only the protocol's states
    assert h.connect(90) == ["BUSY"]


# === bidding =================================================================


@covers((BIDDING, Connected, NEW))
def test_bidding_newcomer_is_busy() -> None:
    h = harness()
    bidding(h)
    h.kinds()
    assert h.connect(90) == ["BUSY"] and h.closed(90)
    assert h.kinds() == [LogKind.BUSY]
    assert h.state is BIDDING


@covers((BIDDING, LineReceived, SELLER))
def test_bidding_seller_line_is_done() -> None:
    h = harness()
    bidding(h)
    assert h.say(S, b"180") == ["DONE"]
    assert h.state is BIDDING


@covers((BIDDING, LineReceived, BUYER))
def test_bidding_bids_invalid_then_accepted_then_done() -> None:
    h = harness()
    bidding(h)
    h.kinds()
    for bad in (b"some wrong bid", b"", b"0", b"-5", b"1_0", "١٢٣".encode(), b"\xff"):
        assert h.say(B1, bad) == ["INVALID bid", "BID"]
    assert h.kinds() == [LogKind.INVALID_BID] * 7
    assert h.say(B1, b" 120 ") == ["ACCEPTED"]
    assert h.kinds() == [LogKind.BID]
    assert h.say(B1, b"999") == ["DONE"]  # one bid per buyer: it is final
    assert h.say(B1, b"x") == ["DONE"]
    h.say(B2, b"150")
    h.say(B3, b"100")
    assert h.state is FINISHING
    assert [(b.buyer, b.amount) for b in h.records[0].bids] == [(1, 120), (2, 150), (3, 100)]


@covers((BIDDING, LineTooLong, SELLER))
def test_bidding_seller_line_too_long_auction_goes_on() -> None:
    h = harness()
    bidding(h)
    h(LineTooLong(S))
    assert h.read(S) == ["ERROR line-too-long"] and h.closed(S)
    assert h.state is BIDDING
    for conn, amount in ((B1, b"120"), (B2, b"150"), (B3, b"180")):
        h.say(conn, amount)
    assert h.records[0].outcome == "sold"
    h(Recorded())
    assert h.read(S) == []  # it left: its result is recorded, not sent
    assert h.read(B3) == ["WON 150 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, LineTooLong, BUYER))
def test_bidding_buyer_line_too_long_abstains_or_keeps_its_bid() -> None:
    h = harness()
    bidding(h)
    assert h.say(B1, b"500") == ["ACCEPTED"]
    h(LineTooLong(B1))  # its bid stands
    assert h.read(B1) == ["ERROR line-too-long"] and h.closed(B1)
    assert h.say(B2, b"150") == ["ACCEPTED"]
    h(LineTooLong(B3))  # without a bid: abstains, and it was the last one
    assert h.read(B3) == ["ERROR line-too-long"]
    assert h.state is FINISHING
    record = h.records[0]
    assert (record.outcome, record.winner, record.price) == ("sold", 1, 150)
    h(Recorded())
    assert h.read(B1) == [] and h.read(B3) == []
    assert h.read(B2) == ["LOST WolfPackSword"]
    assert h.read(S) == ["SOLD 150 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, InputEnded, SELLER))
def test_bidding_seller_input_ended_still_gets_result() -> None:
    h = harness()
    bidding(h, b"1 100 1 X")
    assert h(InputEnded(S)) == []
    h.say(B1, b"100")
    h(Recorded())
    assert h.read(S) == ["SOLD 100 X"]
    h.assert_all_closed()


@covers((BIDDING, InputEnded, BUYER))
def test_bidding_buyer_input_ended_abstains_but_gets_result() -> None:
    h = harness()
    bidding(h)
    h.kinds()
    h(InputEnded(B1))
    assert h.kinds() == [LogKind.ABSTAINS]
    assert not h.closed(B1)
    assert h.say(B2, b"150") == ["ACCEPTED"]
    assert h(InputEnded(B2)) == []  # after a bid: nothing changes
    assert h.state is BIDDING
    h.kinds()
    assert h.say(B3, b"130") == ["ACCEPTED"]
    assert h.state is FINISHING  # B1 abstained; B2 and B3 bid
    h(Recorded())
    assert h.read(B1) == ["LOST WolfPackSword"]
    assert h.read(B2) == ["WON 130 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, InputEnded, BUYER))
def test_bidding_input_ended_after_bid_is_nothing() -> None:
    h = harness()
    bidding(h)
    h.say(B1, b"150")
    h.kinds()
    assert h(InputEnded(B1)) == []
    assert h.state is BIDDING


@covers((BIDDING, Departed, SELLER))
def test_bidding_seller_departure_auction_goes_on() -> None:
    h = harness()
    bidding(h)
    h.kinds()
    h(Departed(S))
    assert h.closed(S) and h.kinds() == [LogKind.SELLER_LEFT]
    assert h.state is BIDDING
    for conn, amount in ((B1, b"120"), (B2, b"150"), (B3, b"180")):
        h.say(conn, amount)
    assert h.records[0].outcome == "sold"  # recorded as usual
    h(Recorded())
    assert h.read(S) == []
    assert h.read(B3) == ["WON 150 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, Departed, BUYER))
def test_bidding_buyer_departure_without_bid_abstains() -> None:
    h = harness()
    bidding(h)
    h.say(B1, b"120")
    h.say(B2, b"150")
    h.kinds()
    h(Departed(B3))  # the last one undecided: the auction ends now
    assert h.closed(B3)
    assert h.kinds() == [LogKind.BUYER_LEFT, LogKind.STATE, LogKind.SOLD]
    assert h.state is FINISHING
    h(Recorded())
    assert h.read(B2) == ["WON 120 WolfPackSword"]
    assert h.read(B1) == ["LOST WolfPackSword"]
    assert h.read(B3) == []
    h.assert_all_closed()


@covers((BIDDING, Departed, BUYER))
def test_bidding_buyer_departure_after_accepted_binds() -> None:
    h = harness()
    bidding(h)
    h.say(B3, b"180")
    h(Departed(B3))
    h.say(B1, b"120")
    h.say(B2, b"150")
    record = h.records[0]
    assert (record.winner, record.price, record.winner_peer) == (3, 150, peer(B3))
    h(Recorded())
    assert h.read(S) == ["SOLD 150 WolfPackSword"]
    assert h.read(B3) == []
    h.assert_all_closed()


@covers((BIDDING, Departed, BUYER), (BIDDING, InputEnded, BUYER))
def test_bidding_departure_after_input_ended_counts_once() -> None:
    h = harness()
    bidding(h)
    h(InputEnded(B1))  # abstains
    h(Departed(B1))  # must not count a second abstention
    assert h.state is BIDDING
    h.say(B2, b"150")
    assert h.state is BIDDING
    h.say(B3, b"180")
    assert h.state is FINISHING


@covers((BIDDING, Departed, BUYER))
def test_bidding_everyone_leaves_unsold_zero() -> None:
    h = harness()
    bidding(h)
    for conn in (B1, B2, B3):
        h(Departed(conn))
    assert h.state is FINISHING
    h(Recorded())
    assert h.read(S) == ["UNSOLD 0 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, Tick, NONE))
def test_bidding_deadline_settles_with_abstentions() -> None:
    h = harness()
    bidding(h)  # BID sent at T0
    h.say(B2, b"150")
    h.kinds()
    h(Tick(), at=T0 + BID_TIMEOUT - 0.01)
    assert h.state is BIDDING and h.kinds() == []
    h(Tick(), at=T0 + BID_TIMEOUT)
    assert h.state is FINISHING and h.auction.deadline is None
    assert h.kinds() == [LogKind.BID_DEADLINE, LogKind.STATE, LogKind.SOLD]
    assert h.say(B1, b"999") == ["DONE"]  # too late: finishing
    h(Recorded())
    assert h.read(B2) == ["WON 100 WolfPackSword"]  # single bid pays min_price
    assert h.read(B1) == ["LOST WolfPackSword"] and h.read(B3) == ["LOST WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, Tick, NONE))
def test_bidding_deadline_without_bids_is_unsold_zero() -> None:
    h = harness()
    bidding(h)
    h(Tick(), at=T0 + BID_TIMEOUT + 1)
    h(Recorded())
    for conn in (S, B1, B2, B3):
        assert h.read(conn) == ["UNSOLD 0 WolfPackSword"]
    h.assert_all_closed()


@covers((BIDDING, Shutdown, NONE))
def test_bidding_shutdown_records_bids_then_cancels() -> None:
    h = harness()
    bidding(h)
    h.say(B1, b"120")
    h(Shutdown())
    h.assert_quiet()
    assert h.state is FINISHING and h.auction.deadline is None
    record = h.records[0]
    assert (record.outcome, record.reason, record.highest) == (
        "cancelled", CancelReason.SHUTDOWN, 120,
    )
    assert [b.amount for b in record.bids] == [120]
    h(Recorded())
    for conn in (S, B1, B2, B3):
        assert h.read(conn) == ["CANCELLED shutdown"]
    h.assert_all_closed()


# === finishing ===============================================================


@covers((FINISHING, Connected, NEW))
def test_finishing_newcomer_is_busy() -> None:
    h = harness()
    finishing(h)
    assert h.connect(90) == ["BUSY"] and h.closed(90)
    assert h.kinds() == [LogKind.BUSY]


@covers((FINISHING, LineReceived, SELLER), (FINISHING, LineReceived, BUYER))
@pytest.mark.parametrize("conn", [S, B1])
def test_finishing_lines_are_done(conn: int) -> None:
    h = harness()
    finishing(h)
    assert h.say(conn, b"150") == ["DONE"]
    assert h.state is FINISHING


@covers((FINISHING, LineTooLong, SELLER), (FINISHING, LineTooLong, BUYER))
@pytest.mark.parametrize("conn", [S, B3])
def test_finishing_line_too_long_loses_only_that_result(conn: int) -> None:
    h = harness()
    finishing(h)
    h(LineTooLong(conn))
    assert h.read(conn) == ["ERROR line-too-long"] and h.closed(conn)
    assert h.kinds() == [LogKind.LINE_TOO_LONG, LEFT[conn]]
    assert h.state is FINISHING
    h(Recorded())
    assert h.read(conn) == []
    others = {S: "SOLD 150 WolfPackSword", B1: "LOST WolfPackSword", B3: "WON 150 WolfPackSword"}
    for other, line in others.items():
        if other != conn:
            assert h.read(other) == [line]
    h.assert_all_closed()


@covers((FINISHING, InputEnded, SELLER), (FINISHING, InputEnded, BUYER))
@pytest.mark.parametrize("conn", [S, B1])
def test_finishing_input_ended_still_gets_result(conn: int) -> None:
    h = harness()
    finishing(h)
    assert h(InputEnded(conn)) == []
    h(Recorded())
    assert len(h.read(conn)) == 1
    h.assert_all_closed()


@covers((FINISHING, Departed, SELLER), (FINISHING, Departed, BUYER))
@pytest.mark.parametrize("conn", [S, B3])
def test_finishing_departure_loses_only_that_result(conn: int) -> None:
    h = harness()
    finishing(h)
    h(Departed(conn))
    assert h.closed(conn) and h.kinds() == [LEFT[conn]]
    h(Recorded())
    assert h.read(conn) == []
    assert h.records[0].winner == 3  # the record is unchanged
    assert sum(len(h.read(c)) for c in (S, B1, B2, B3)) == 3
    h.assert_all_closed()


@covers((FINISHING, Tick, NONE))
def test_finishing_tick_does_nothing() -> None:
    h = harness()
    finishing(h)
    assert h(Tick(), at=T0 + 10_000) == []
    assert h.state is FINISHING


@covers((FINISHING, Recorded, NONE))
def test_finishing_recorded_releases_results_and_resets() -> None:
    h = harness()
    finishing(h)
    h.assert_quiet()  # nothing before the record is durable
    h(Recorded())
    assert h.read(S) == ["SOLD 150 WolfPackSword"]
    assert h.read(B1) == ["LOST WolfPackSword"]
    assert h.read(B2) == ["LOST WolfPackSword"]
    assert h.read(B3) == ["WON 150 WolfPackSword"]
    assert h.kinds() == [LogKind.STATE]
    assert h.state is WS and h.auction.deadline is None
    h.assert_all_closed()
    # A fresh auction: a new seller, buyer numbers from 1 again.
    assert h.connect(2) == ["ROLE SELLER", "REQUEST"]
    assert h.say(2, b"1 10 2 Map") == ["START"]
    assert h.connect(21) == ["ROLE BUYER 1", "WAITING 1 2"]


@covers((FINISHING, Shutdown, NONE))
def test_finishing_shutdown_replaces_the_result_with_cancelled() -> None:
    h = harness()
    finishing(h)
    h(Shutdown())
    h.assert_quiet()
    assert [(r.outcome, r.reason) for r in h.records] == [
        ("sold", None), ("cancelled", CancelReason.SHUTDOWN),
    ]
    assert h.records[1].highest == 180 and len(h.records[1].bids) == 3
    assert h.state is FINISHING
    assert h(Shutdown()) == []  # a second shutdown changes nothing
    h(Recorded())
    for conn in (S, B1, B2, B3):
        assert h.read(conn) == ["CANCELLED shutdown"]
    h.assert_all_closed()
    assert h.state is STOPPING
    assert h(Shutdown()) == []


@covers((FINISHING, Shutdown, NONE))
def test_finishing_shutdown_after_a_cancellation_records_the_shutdown() -> None:
    h = harness()
    waiting_buyers(h)
    h(Departed(S))
    h(Shutdown())
    assert [(r.outcome, r.reason) for r in h.records] == [
        ("cancelled", CancelReason.SELLER_LEFT), ("cancelled", CancelReason.SHUTDOWN),
    ]
    h(Recorded())
    assert h.read(B1) == ["CANCELLED shutdown"] and h.read(B2) == ["CANCELLED shutdown"]
    assert h.state is STOPPING
    h.assert_all_closed()


# === stopping ================================================================


@covers((STOPPING, Connected, NEW), (STOPPING, Tick, NONE), (STOPPING, Shutdown, NONE))
def test_stopping_turns_everyone_away_and_nothing_else_happens() -> None:
    h = harness()
    h(Shutdown())
    h.kinds()
    assert h.connect(2) == ["BUSY"] and h.closed(2)
    assert h.kinds() == [LogKind.BUSY]
    assert h(Tick(), at=T0 + 10_000) == []
    assert h(Shutdown()) == []
    assert h.state is STOPPING and h.auction.deadline is None


# === the table's targets =====================================================


def test_an_over_long_line_leads_where_the_departure_it_causes_leads() -> None:
    for (state, event, role), entry in TRANSITIONS.items():
        if event is LineTooLong:
            assert entry.targets == TRANSITIONS[(state, Departed, role)].targets


def test_entering_a_state_the_entry_does_not_name_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = (WS, LineReceived, SELLER)
    monkeypatch.setitem(TRANSITIONS, key, Transition(TRANSITIONS[key].handler))
    h = harness()
    with_seller(h)
    with pytest.raises(AuctionError, match="waiting-seller -> waiting-buyers"):
        h(LineReceived(S, b"2 100 3 WolfPackSword"))
    assert h.state is WS


def test_every_transition_is_covered() -> None:
    assert set(TRANSITIONS) - COVERED == set()


# === pairs not in the table ==================================================


def reach(state: State) -> Harness:
    h = harness()
    setups: dict[State, Callable[[Harness], object]] = {
        WS: with_seller, WB: waiting_buyers, BIDDING: bidding, FINISHING: finishing,
        STOPPING: lambda h: h(Shutdown()),
    }
    setups[state](h)
    h.inbox.clear()
    h.kinds()
    return h


def assert_refused(h: Harness, event: Event) -> None:
    state, deadline = h.state, h.auction.deadline
    before = {conn: list(lines) for conn, lines in h.inbox.items()}
    with pytest.raises(AuctionError):
        h(event)
    assert h.state is state and h.auction.deadline == deadline
    assert {conn: lines for conn, lines in h.inbox.items()} == before  # no effect


@pytest.mark.parametrize("state", [WS, WB, BIDDING, STOPPING])
def test_recorded_outside_finishing_is_refused(state: State) -> None:
    assert (state, Recorded, NONE) not in TRANSITIONS
    assert_refused(reach(state), Recorded())


def test_recorded_in_fresh_machine_is_refused() -> None:
    assert_refused(harness(), Recorded())


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize(
    "event", [LineReceived(77, b"1"), LineTooLong(77), InputEnded(77), Departed(77)]
)
def test_events_for_unknown_connections_are_refused(state: State, event: Event) -> None:
    assert_refused(reach(state), event)


@pytest.mark.parametrize("state", [WS, WB, BIDDING, FINISHING])  # stopping has no parties
def test_connected_twice_is_refused(state: State) -> None:
    h = reach(state)
    assert_refused(h, Connected(S, peer(S)))
    if state is not WS:
        assert_refused(h, Connected(B1, peer(B1)))


@pytest.mark.parametrize("state", [WB, BIDDING, FINISHING])
def test_no_buyer_events_in_waiting_seller_or_stopping(state: State) -> None:
    """After an auction the buyers are gone; their connections are unknown."""
    h = reach(state)
    if state is not FINISHING:
        h(Shutdown())
    h(Recorded())
    assert h.state is (WS if state is FINISHING else STOPPING)
    for key in [k for k in TRANSITIONS if k[0] is h.state]:
        assert key[2] is not BUYER
    assert_refused(h, LineReceived(B1, b"1"))


def test_events_after_close_are_refused() -> None:
    h = harness()
    with_seller(h)
    assert h.connect(90) == ["BUSY"]
    assert_refused(h, LineReceived(90, b"hello"))  # a BUSY connection is no party
    h(Tick(), at=T0 + REQUEST_TIMEOUT)
    assert h.closed(S)
    assert_refused(h, LineReceived(S, b"2 100 3 X"))  # a timed-out seller
    assert_refused(h, Departed(S))


def test_departed_buyer_events_are_refused() -> None:
    h = reach(BIDDING)
    h(Departed(B1))
    assert_refused(h, LineReceived(B1, b"100"))
    assert_refused(h, Departed(B1))


def test_illegal_pairs_are_exactly_those_missing_from_the_table() -> None:
    """The table names every (state, event, role) a caller can produce, and
    only the Recorded, buyer-in-waiting-seller and stopping pairs are absent
    (nobody is a party in stopping)."""
    events = [Connected, LineReceived, LineTooLong, InputEnded, Departed, Tick, Recorded, Shutdown]
    conn_events = {LineReceived, LineTooLong, InputEnded, Departed}
    missing = set()
    for state in State:
        for event in events:
            if event is Connected:
                roles = [NEW]
            elif event in conn_events:
                roles = [SELLER, BUYER]
            else:
                roles = [NONE]
            missing |= {(state, event, r) for r in roles if (state, event, r) not in TRANSITIONS}
    assert missing == {
        (WS, Recorded, NONE),
        (WB, Recorded, NONE),
        (BIDDING, Recorded, NONE),
        (STOPPING, Recorded, NONE),
        *((WS, e, BUYER) for e in conn_events),
        *((STOPPING, e, role) for e in conn_events for role in (SELLER, BUYER)),
    }


# === the outcome rule ========================================================


@pytest.mark.parametrize(
    ("pricing", "min_price", "bids", "want"),
    [
        # the transcript: second price pays the second-highest
        (2, 100, [(1, 120), (2, 150), (3, 180)], Outcome(True, 180, 150, 3)),
        (1, 100, [(1, 120), (2, 150), (3, 180)], Outcome(True, 180, 180, 3)),
        # second price never below min_price
        (2, 100, [(1, 50), (2, 180)], Outcome(True, 180, 100, 2)),
        # a single bid pays min_price (second price) or itself (first price)
        (2, 100, [(1, 180)], Outcome(True, 180, 100, 1)),
        (1, 100, [(1, 180)], Outcome(True, 180, 180, 1)),
        # exactly min_price sells
        (2, 100, [(1, 100)], Outcome(True, 100, 100, 1)),
        (1, 100, [(1, 100), (2, 99)], Outcome(True, 100, 100, 1)),
        # ties go to the earliest; a tie at the top pays the tied amount
        (1, 100, [(2, 150), (1, 150)], Outcome(True, 150, 150, 2)),
        (2, 100, [(1, 120), (3, 150), (2, 150)], Outcome(True, 150, 150, 3)),
        (2, 100, [(4, 150), (1, 150), (2, 150)], Outcome(True, 150, 150, 4)),
        # the second-highest excludes only the winner's own bid
        (2, 1, [(1, 5), (2, 9), (3, 7), (4, 8)], Outcome(True, 9, 8, 2)),
        # unsold: highest below min_price; UNSOLD carries the highest
        (2, 100, [(1, 99), (2, 50)], Outcome(False, 99, 0, None)),
        (1, 100, [(1, 1)], Outcome(False, 1, 0, None)),
        (2, 100, [], Outcome(False, 0, 0, None)),
        (1, 1, [], Outcome(False, 0, 0, None)),
        # big numbers stay exact
        (2, 1, [(1, 999_999_999_999), (2, 999_999_999_998)],
         Outcome(True, 999_999_999_999, 999_999_999_998, 1)),
    ],
)
def test_settle(pricing: int, min_price: int, bids: list[tuple[int, int]], want: Outcome) -> None:
    assert settle(Pricing(pricing), min_price, bids) == want


def test_transcript_auction_end_to_end() -> None:
    """The auction of TRANSCRIPTS.md: every line, every log, the record."""
    h = harness()
    h(Connected(S, peer(S)), at=T0)
    h(LineReceived(S, b"2 100 3 WolfPackSword"), at=T0 + 1)
    for i, conn in enumerate((B1, B2, B3)):
        h(Connected(conn, peer(conn)), at=T0 + 2 + i)
    for i, (conn, amount) in enumerate(((B1, b"120"), (B2, b"150"), (B3, b"180"))):
        h(LineReceived(conn, amount), at=T0 + 10 + i)
    assert h.state is FINISHING
    h(Recorded(), at=T0 + 13)
    assert h.read(S) == ["ROLE SELLER", "REQUEST", "START", "SOLD 150 WolfPackSword"]
    assert h.read(B1) == ["ROLE BUYER 1", "WAITING 1 3", "BID", "ACCEPTED", "LOST WolfPackSword"]
    assert h.read(B2) == ["ROLE BUYER 2", "WAITING 2 3", "BID", "ACCEPTED", "LOST WolfPackSword"]
    assert h.read(B3) == ["ROLE BUYER 3", "BID", "ACCEPTED", "WON 150 WolfPackSword"]
    h.assert_all_closed()
    # The log events come in the order of the transcript's server text.
    assert [(log.kind, log.args) for log in h.logs] == [
        (LogKind.SELLER_CONNECTED, (peer(S),)),
        (LogKind.REQUEST_ACCEPTED, (Pricing.SECOND, 100, 3, "WolfPackSword")),
        (LogKind.STATE, (WB,)),
        (LogKind.BUYER_CONNECTED, (1, peer(B1))),
        (LogKind.BUYER_CONNECTED, (2, peer(B2))),
        (LogKind.BUYER_CONNECTED, (3, peer(B3))),
        (LogKind.BIDDING_STARTS, ()),
        (LogKind.STATE, (BIDDING,)),
        (LogKind.BID, (1, 120)),
        (LogKind.BID, (2, 150)),
        (LogKind.BID, (3, 180)),
        (LogKind.STATE, (FINISHING,)),
        (LogKind.SOLD, (180, 150)),
        (LogKind.STATE, (WS,)),
    ]
    (record,) = h.records
    assert record.item == "WolfPackSword"
    assert (record.pricing, record.min_price, record.buyers_requested, record.buyers_connected) == (
        Pricing.SECOND, 100, 3, 3,
    )
    assert (record.outcome, record.reason, record.winner, record.winner_peer) == (
        "sold", None, 3, peer(B3),
    )
    assert (record.highest, record.price) == (180, 150)
    assert (record.started_at, record.ended_at, record.seller_peer) == (T0 + 1, T0 + 12, peer(S))
    assert [(b.buyer, b.amount, b.order, b.at) for b in record.bids] == [
        (1, 120, 1, T0 + 10), (2, 150, 2, T0 + 11), (3, 180, 3, T0 + 12),
    ]


@pytest.mark.parametrize(
    ("request_line", "bids", "seller", "results"),
    [
        # first price
        (b"1 100 2 Map", [(B1, b"150"), (B2, b"120")], "SOLD 150 Map",
         {B1: "WON 150 Map", B2: "LOST Map"}),
        # tie: the earlier bid wins and (second price) pays the tied amount
        (b"2 100 2 Map", [(B2, b"150"), (B1, b"150")], "SOLD 150 Map",
         {B1: "LOST Map", B2: "WON 150 Map"}),
        (b"1 100 2 Map", [(B2, b"150"), (B1, b"150")], "SOLD 150 Map",
         {B1: "LOST Map", B2: "WON 150 Map"}),
        # unsold goes to everyone, with the highest bid
        (b"2 200 2 Map", [(B1, b"150"), (B2, b"199")], "UNSOLD 199 Map",
         {B1: "UNSOLD 199 Map", B2: "UNSOLD 199 Map"}),
        # item names keep inner spaces
        (b"2 10 1 Old  Map", [(B1, b"15")], "SOLD 10 Old  Map", {B1: "WON 10 Old  Map"}),
    ],
)
def test_results_on_the_wire(
    request_line: bytes, bids: list[tuple[int, bytes]], seller: str, results: dict[int, str]
) -> None:
    h = harness()
    lines = run_auction(h, request_line, bids)
    assert lines[S][-1] == seller
    for conn, line in results.items():
        assert lines[conn][-1] == line
    for conn_lines in lines.values():  # one final line each, and it is the last
        keywords = [line.split(" ")[0] for line in conn_lines]
        assert [k in protocol.FINAL for k in keywords] == [False] * (len(keywords) - 1) + [True]


def test_buyer_numbering_after_departures_is_never_reused() -> None:
    h = harness()
    started(h, b"1 10 2 Map")
    assert h.connect(B1) == ["ROLE BUYER 1", "WAITING 1 2"]
    h(Departed(B1))
    assert h.connect(B2) == ["ROLE BUYER 2", "WAITING 1 2"]
    h(InputEnded(B2))
    assert h.connect(B3) == ["ROLE BUYER 3", "WAITING 1 2"]
    assert h.connect(B4) == ["ROLE BUYER 4", "BID"]
    h.say(B3, b"11")
    h.say(B4, b"12")
    h(Recorded())
    assert h.records[0].winner == 4
    assert h.read(B4) == ["WON 12 Map"]
    h.assert_all_closed()


def test_seller_leaving_in_bidding_and_buyer_after_accepted_record_normally() -> None:
    h = harness()
    bidding(h, b"1 100 2 Map")
    h.say(B1, b"300")
    h(Departed(B1))
    h(Departed(S))
    h.say(B2, b"200")
    (record,) = h.records
    assert (record.outcome, record.winner, record.price) == ("sold", 1, 300)
    h(Recorded())
    assert h.read(B2) == ["LOST Map"]
    h.assert_all_closed()


def test_many_buyers_and_lines_each_get_exactly_one_close() -> None:
    h = harness(max_buyers=200)
    with_seller(h)
    h.say(S, b"2 10 200 Crate")
    conns = list(range(1000, 1200))
    for conn in conns:
        h.connect(conn)
    for conn in conns[:150]:
        h.say(conn, str(conn).encode())
    for conn in conns[150:180]:
        h(Departed(conn))
    for conn in conns[180:]:
        h(InputEnded(conn))
    assert h.state is FINISHING
    h(Recorded())
    h.assert_all_closed()
    record = h.records[0]
    assert (record.winner, record.price) == (150, 1148)
    assert h.read(conns[149])[-1] == "WON 1148 Crate"
    assert h.read(conns[199]) == ["LOST Crate"]


# === random event sequences ==================================================

#: Lines a client might send: requests, bids, junk.
RANDOM_LINES = [
    b"2 100 3 WolfPackSword", b"1 10 1 Map", b"2 5 2 Old Map", b"1 1 4 X",
    b"120", b"150", b"5", b"99", b"0", b"", b"junk", b"\xff", b"2 100 0 X",
]


def random_run(seed: int, steps: int = 150) -> Harness:
    """Feed a random sequence of events a correct caller could produce; end
    with a shutdown; return the harness."""
    rng = random.Random(seed)
    h = harness(max_buyers=4, request_timeout=5.0, bid_timeout=5.0)
    next_conn = 1
    input_ended: set[int] = set()
    for _ in range(steps):
        open_conns = sorted(c for c in h.seen if not h.closed(c))
        readable = [c for c in open_conns if c not in input_ended]
        roll = rng.random()
        h.now += rng.choice([0.0, 0.1, 1.0, 3.0])
        if roll < 0.25 or not open_conns:
            h(Connected(next_conn, peer(next_conn)))
            next_conn += 1
        elif roll < 0.7 and readable:
            h(LineReceived(rng.choice(readable), rng.choice(RANDOM_LINES)))
        elif roll < 0.75 and readable:
            h(LineTooLong(rng.choice(readable)))
        elif roll < 0.82 and readable:
            conn = rng.choice(readable)
            input_ended.add(conn)
            h(InputEnded(conn))
        elif roll < 0.88:
            h(Departed(rng.choice(open_conns)))
        elif roll < 0.95 and h.state is FINISHING:
            h(Recorded())
        elif h.auction.deadline is not None:
            h(Tick(), at=max(h.now, h.auction.deadline))
    h(Shutdown())
    if h.state is FINISHING:
        h(Recorded())
    assert h.state is STOPPING
    return h


@pytest.mark.parametrize("seed", range(40))
def test_random_sequences_keep_the_promises(seed: int) -> None:
    """Whatever happens: everyone is closed exactly once (checked by the
    harness as it goes), nobody gets two final lines, and nobody is closed
    without a final line unless it went away first."""
    h = random_run(seed)
    h.assert_all_closed()
    for conn in h.seen:
        keywords = [line.split(" ")[0] for line in h.history[conn]]
        finals = [k for k in keywords if k in protocol.FINAL]
        assert len(finals) <= 1, (conn, keywords)
        if conn not in h.went_away:
            assert keywords and keywords[-1] in protocol.FINAL, (conn, keywords)
