"""Whole auctions between the server machine and several client sessions,
in memory (tests/pair_tools.py): every session's notices and exit status,
from the first line to the last, with no sockets and no clock."""

from __future__ import annotations

from pair_tools import InMemoryAuction
from session_tools import Driver

from reactor_auction.events import State
from reactor_auction.protocol import CancelReason
from reactor_auction.session import ExitStatus, Notice, NoticeKind

K = NoticeKind


def said(*items: NoticeKind | Notice) -> list[Notice]:
    """Return the notices ``items`` (a bare kind is a notice without values)."""
    return [item if isinstance(item, Notice) else Notice(item) for item in items]


SELLER_START = said(K.CONNECTED, K.ROLE_SELLER, K.REQUEST_PROMPT, K.START)
WAITING = said(K.CONNECTED, K.ROLE_BUYER, K.WAITING)  # a buyer before the count is complete
LAST = said(K.CONNECTED, K.ROLE_BUYER)  # the buyer completing the count
BIDDING = said(K.BIDDING_STARTS, K.BID_PROMPT)
BID_IN = said(K.ACCEPTED, K.BUYER_FINISHED)
LOST = said(K.LOST, K.OVER)
BUSY = said(K.CONNECTED, K.BUSY)
SELLER_UNSOLD = said(K.SELLER_FINISHED, K.SELLER_UNSOLD, K.OVER)


def sold(item: str, price: int) -> list[Notice]:
    return said(K.SELLER_FINISHED, Notice(K.SOLD, item=item, price=price), K.OVER)


def won(item: str, price: int) -> list[Notice]:
    return said(Notice(K.WON, item=item, price=price), K.OVER)


def assert_over(client: Driver, status: ExitStatus, notices: list[Notice]) -> None:
    assert client.session.status is status
    assert client.notices == notices


def test_second_price_sold_with_an_invalid_request_retried() -> None:
    room = InMemoryAuction()
    seller = room.join("some wrong input", "2 100 3 WolfPackSword")
    buyers = [room.join(bid) for bid in ("120", "150", "180")]
    opening = SELLER_START[:3] + said(K.INVALID_REQUEST, K.REQUEST_PROMPT, K.START)
    assert_over(seller, ExitStatus.OK, opening + sold("WolfPackSword", 150))
    assert_over(buyers[0], ExitStatus.OK, WAITING + BIDDING + BID_IN + LOST)
    assert_over(buyers[1], ExitStatus.OK, WAITING + BIDDING + BID_IN + LOST)
    assert_over(buyers[2], ExitStatus.OK, LAST + BIDDING + BID_IN + won("WolfPackSword", 150))
    assert seller.sent == [b"some wrong input\n", b"2 100 3 WolfPackSword\n"]
    assert [record.price for record in room.records] == [150]
    assert room.auction.state is State.WAITING_SELLER


def test_first_price_sold() -> None:
    room = InMemoryAuction()
    seller = room.join("1 100 2 Old Lamp")
    first, second = room.join("120"), room.join("90")
    assert_over(seller, ExitStatus.OK, SELLER_START + sold("Old Lamp", 120))
    assert_over(first, ExitStatus.OK, WAITING + BIDDING + BID_IN + won("Old Lamp", 120))
    assert_over(second, ExitStatus.OK, LAST + BIDDING + BID_IN + LOST)


def test_unsold_below_the_minimum() -> None:
    room = InMemoryAuction()
    seller = room.join("2 100 2 Cup")
    buyers = [room.join("60"), room.join("80")]
    unsold = said(K.BUYER_UNSOLD, K.OVER)
    assert_over(seller, ExitStatus.OK, SELLER_START + SELLER_UNSOLD)
    assert_over(buyers[0], ExitStatus.OK, WAITING + BIDDING + BID_IN + unsold)
    assert_over(buyers[1], ExitStatus.OK, LAST + BIDDING + BID_IN + unsold)
    assert [record.outcome for record in room.records] == ["unsold"]


def test_unsold_when_nobody_bids_in_time() -> None:
    room = InMemoryAuction(bid_timeout=5.0)
    seller = room.join("2 100 2 Cup")
    buyers = [room.join(interactive=True), room.join(interactive=True)]
    room.advance(4.0)
    assert all(buyer.session.status is None for buyer in buyers)
    room.advance(1.0)  # the bid deadline
    unsold = said(K.BUYER_FINISHED, K.BUYER_UNSOLD, K.OVER)
    assert_over(seller, ExitStatus.OK, SELLER_START + SELLER_UNSOLD)
    assert_over(buyers[0], ExitStatus.OK, WAITING + BIDDING + unsold)
    assert_over(buyers[1], ExitStatus.OK, LAST + BIDDING + unsold)


def test_busy_newcomers_while_the_seller_composes_and_while_bidding() -> None:
    room = InMemoryAuction()
    seller = room.join(interactive=True)
    early = room.join("1 1 1 X")
    assert_over(early, ExitStatus.BUSY, BUSY)
    assert early.sent == []  # a script answers prompts only; BUSY came first
    room.types(seller, "2 10 2 Cup")
    first, second = room.join(interactive=True), room.join(interactive=True)
    late = room.join(interactive=True)
    assert_over(late, ExitStatus.BUSY, BUSY)
    room.types(first, "30")
    room.types(second, "20")
    assert_over(seller, ExitStatus.OK, SELLER_START[:3] + said(K.START) + sold("Cup", 20))
    assert_over(first, ExitStatus.OK, WAITING + BIDDING + BID_IN + won("Cup", 20))
    assert_over(second, ExitStatus.OK, LAST + BIDDING + BID_IN + LOST)


def test_typing_early_an_invalid_bid_and_a_line_after_the_bid() -> None:
    room = InMemoryAuction()
    seller = room.join(interactive=True)
    room.types(seller, "x")
    room.types(seller, "1 10 1 Cup")
    room.types(seller, "more")  # the request is in already
    buyer = room.join(interactive=True)
    # The count is complete at once: bidding starts for the only buyer.
    room.types(buyer, "abc")
    room.types(buyer, "15")
    assert_over(
        seller,
        ExitStatus.OK,
        said(K.CONNECTED, K.ROLE_SELLER, K.REQUEST_PROMPT, K.INVALID_REQUEST, K.REQUEST_PROMPT)
        + said(K.START, K.DONE_SELLER)
        + sold("Cup", 15),
    )
    assert_over(
        buyer,
        ExitStatus.OK,
        LAST + BIDDING + said(K.INVALID_BID, K.BID_PROMPT) + BID_IN + won("Cup", 15),
    )


def test_typing_before_bidding_starts_is_answered_notyet() -> None:
    room = InMemoryAuction()
    room.join("1 10 2 Cup")
    eager = room.join(interactive=True)
    room.types(eager, "12")  # before BID
    room.join("11")
    assert eager.session.status is None
    room.types(eager, "12")  # the last bid: first price, the winner pays it
    assert_over(eager, ExitStatus.OK, WAITING + said(K.NOTYET) + BIDDING + BID_IN + won("Cup", 12))


def test_the_seller_leaving_cancels_for_the_waiting_buyers() -> None:
    room = InMemoryAuction()
    seller = room.join("1 10 3 Cup")
    buyers = [room.join(interactive=True), room.join(interactive=True)]
    room.interrupts(seller)  # Ctrl-C: a reset, the server sees the seller leave
    cancelled = said(Notice(K.CANCELLED, word="seller-left"), K.DISCONNECTING)
    assert_over(seller, ExitStatus.INTERRUPTED, SELLER_START + said(K.INTERRUPTED))
    for buyer in buyers:
        assert_over(buyer, ExitStatus.CANCELLED, WAITING + cancelled)
    assert room.auction.state is State.WAITING_SELLER
    assert room.join("1 1 1 Next").notices[:2] == said(K.CONNECTED, K.ROLE_SELLER)


def test_shutdown_cancels_for_everyone() -> None:
    room = InMemoryAuction()
    seller = room.join("1 10 2 Cup")
    buyer = room.join(interactive=True)
    room.shutdown()
    cancelled = said(Notice(K.CANCELLED, word="shutdown"), K.DISCONNECTING)
    assert_over(seller, ExitStatus.CANCELLED, SELLER_START + cancelled)
    assert_over(buyer, ExitStatus.CANCELLED, WAITING + cancelled)
    assert [record.reason for record in room.records] == [CancelReason.SHUTDOWN]


def test_a_request_timeout() -> None:
    room = InMemoryAuction(request_timeout=3.0)
    seller = room.join(interactive=True)
    room.advance(3.0)
    assert_over(
        seller,
        ExitStatus.TIMED_OUT,
        said(K.CONNECTED, K.ROLE_SELLER, K.REQUEST_PROMPT, K.TIMEOUT, K.DISCONNECTING),
    )
    assert room.join(interactive=True).notices == said(K.CONNECTED, K.ROLE_SELLER, K.REQUEST_PROMPT)
