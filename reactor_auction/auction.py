"""The auction as a sans-IO state machine: the server's ``Auction`` and its
transition table.

The events it takes and the actions it answers with are in events.py; the
outcome rule is in outcome.py. No sockets, no real clock: the server's shell
feeds events and carries out actions, and the tests do the same without a
network.

Connections are plain integers chosen by the caller. Every connection the
machine has heard of gets exactly one ``Close`` action in the end, after its
final line if it was still there to receive one; after ``Close`` the caller
must not send further events for that connection.

The transition table ``TRANSITIONS`` is plain data: (state, event, role) ->
handler. A pair that is not in it is a bug in the caller and raises
``AuctionError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from .events import (
    Action,
    AuctionRecord,
    BidRecord,
    Close,
    Connected,
    Departed,
    Event,
    IdentityEnum,
    InputEnded,
    LineReceived,
    LineTooLong,
    Log,
    LogKind,
    Record,
    Recorded,
    Send,
    Shutdown,
    State,
    Tick,
)
from .outcome import Outcome, settle
from .protocol import CancelReason, InvalidInput, Request


class Role(IdentityEnum):
    """Who an event is about."""

    NEW = "new"  # a connection the machine has not seen
    SELLER = "seller"
    BUYER = "buyer"
    NONE = "none"  # events about no connection: time, the ledger, shutdown


_TICK = Tick()


class AuctionError(RuntimeError):
    """An event the transition table does not allow: a bug in the caller."""


# --- participants --------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Party:
    conn: int
    peer: str
    present: bool = True  # we can still write to it


@dataclass(slots=True, eq=False)
class _Buyer(_Party):
    number: int = 0
    bid: int | None = None
    input_open: bool = True  # it can still send lines


@dataclass(slots=True)
class _Auction:
    """The auction under way, from the accepted request to the result."""

    request: Request
    seller: _Party
    started_at: float
    bids: list[BidRecord] = field(default_factory=list)


# --- the machine ---------------------------------------------------------------

_S = State
_R = Role

#: (state, event type, role) -> name of the Auction method that handles it.
TRANSITIONS: dict[tuple[State, type, Role], str] = {
    # waiting-seller: the first connection becomes the seller.
    (_S.WAITING_SELLER, Connected, _R.NEW): "_seller_or_busy",
    (_S.WAITING_SELLER, LineReceived, _R.SELLER): "_seller_request",
    (_S.WAITING_SELLER, LineTooLong, _R.SELLER): "_too_long",
    (_S.WAITING_SELLER, InputEnded, _R.SELLER): "_seller_left_early",
    (_S.WAITING_SELLER, Departed, _R.SELLER): "_seller_left_early",
    (_S.WAITING_SELLER, Tick, _R.NONE): "_request_deadline",
    (_S.WAITING_SELLER, Shutdown, _R.NONE): "_shutdown",
    # waiting-buyers: connections become buyers until the count is reached.
    (_S.WAITING_BUYERS, Connected, _R.NEW): "_add_buyer",
    (_S.WAITING_BUYERS, LineReceived, _R.SELLER): "_done",
    (_S.WAITING_BUYERS, LineReceived, _R.BUYER): "_notyet",
    (_S.WAITING_BUYERS, LineTooLong, _R.SELLER): "_too_long",
    (_S.WAITING_BUYERS, LineTooLong, _R.BUYER): "_too_long",
    (_S.WAITING_BUYERS, InputEnded, _R.SELLER): "_input_ended",
    (_S.WAITING_BUYERS, InputEnded, _R.BUYER): "_buyer_left_waiting",
    (_S.WAITING_BUYERS, Departed, _R.SELLER): "_seller_left_waiting",
    (_S.WAITING_BUYERS, Departed, _R.BUYER): "_buyer_left_waiting",
    (_S.WAITING_BUYERS, Tick, _R.NONE): "_nothing",
    (_S.WAITING_BUYERS, Shutdown, _R.NONE): "_shutdown",
    # bidding: one bid per connected buyer, until all are in or time is up.
    (_S.BIDDING, Connected, _R.NEW): "_busy",
    (_S.BIDDING, LineReceived, _R.SELLER): "_done",
    (_S.BIDDING, LineReceived, _R.BUYER): "_bid",
    (_S.BIDDING, LineTooLong, _R.SELLER): "_too_long",
    (_S.BIDDING, LineTooLong, _R.BUYER): "_too_long",
    (_S.BIDDING, InputEnded, _R.SELLER): "_input_ended",
    (_S.BIDDING, InputEnded, _R.BUYER): "_buyer_input_ended_bidding",
    (_S.BIDDING, Departed, _R.SELLER): "_left_for_good",
    (_S.BIDDING, Departed, _R.BUYER): "_buyer_left_bidding",
    (_S.BIDDING, Tick, _R.NONE): "_bid_deadline",
    (_S.BIDDING, Shutdown, _R.NONE): "_shutdown",
    # finishing: the result waits for the ledger, then goes out.
    (_S.FINISHING, Connected, _R.NEW): "_busy",
    (_S.FINISHING, LineReceived, _R.SELLER): "_done",
    (_S.FINISHING, LineReceived, _R.BUYER): "_done",
    (_S.FINISHING, LineTooLong, _R.SELLER): "_too_long",
    (_S.FINISHING, LineTooLong, _R.BUYER): "_too_long",
    (_S.FINISHING, InputEnded, _R.SELLER): "_input_ended",
    (_S.FINISHING, InputEnded, _R.BUYER): "_input_ended",
    (_S.FINISHING, Departed, _R.SELLER): "_left_for_good",
    (_S.FINISHING, Departed, _R.BUYER): "_left_for_good",
    (_S.FINISHING, Tick, _R.NONE): "_nothing",
    (_S.FINISHING, Recorded, _R.NONE): "_announce",
    (_S.FINISHING, Shutdown, _R.NONE): "_shutdown",
}


class Auction:
    """The server's auction: feed it events with ``handle``, carry out the actions.

    ``deadline`` is the monotonic time at which the machine next wants a
    ``Tick`` (None: no deadline is running).
    """

    def __init__(
        self,
        *,
        max_buyers: int = 1000,
        request_timeout: float = 300.0,
        bid_timeout: float = 300.0,
    ) -> None:
        self.max_buyers = max_buyers
        self.request_timeout = request_timeout
        self.bid_timeout = bid_timeout
        self.state = State.WAITING_SELLER
        self.deadline: float | None = None
        self._seller: _Party | None = None
        self._buyers: dict[int, _Buyer] = {}  # conn -> buyer, in joining order
        self._next_number = 1
        self._undecided = 0  # buyers that can still bid and have not
        self._auction: _Auction | None = None
        self._finals: list[tuple[_Party, bytes]] = []  # sent after Recorded
        self._actions: list[Action] = []
        self._now = 0.0
        self._stopping = False
        # TRANSITIONS with each name bound to this machine, looked up once here
        # rather than for every event.
        self._handlers: dict[tuple[State, type, Role], Callable[[Any], None]] = {
            key: getattr(self, name) for key, name in TRANSITIONS.items()
        }

    # -- public API -------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        """Return the actions that ``event`` at monotonic time ``now`` causes.

        If ``deadline`` has passed by ``now``, the deadline takes effect
        first, as if a ``Tick`` had come before the event: a request or a bid
        that arrives too late is never accepted, even when the shell learns
        of it before its timer fires. An event about a connection that the
        deadline closed is then dropped.

        Raises AuctionError for an event the transition table does not allow
        in the current state (an unknown connection, ``Recorded`` outside
        ``finishing``): a bug in the caller, not in a client. Nothing has
        changed then.
        """
        handler = self._transition(event)
        self._now = now
        actions: list[Action] = []
        self._actions = actions
        due = self.deadline is not None and now >= self.deadline
        if isinstance(event, Tick):
            if due:
                handler(event)
            return actions
        if due:
            self._transition(_TICK)(_TICK)
            try:
                handler = self._transition(event)
            except AuctionError:
                return actions  # its connection got TIMEOUT and was closed
        handler(event)
        return actions

    def _transition(self, event: Event) -> Callable[[Any], None]:
        """Return the bound handler of ``event`` in the current state.

        The event's role: NONE for an event of no connection, SELLER or BUYER
        for a present party's connection, NEW for a connection not seen
        before. Raises AuctionError when the table has no entry for it, and
        for an event of a connection the machine does not know (or a second
        Connected for one it does).
        """
        kind = type(event)
        conn = getattr(event, "conn", None)
        if conn is None:
            role = Role.NONE
        else:
            seller = self._seller
            buyer = self._buyers.get(conn)
            if seller is not None and seller.conn == conn and seller.present:
                role = Role.SELLER
            elif buyer is not None and buyer.present:
                role = Role.BUYER
            elif kind is Connected:
                role = Role.NEW
            else:
                raise AuctionError(f"{kind.__name__} for unknown connection {conn}")
            if kind is Connected and role is not Role.NEW:
                raise AuctionError(f"connection {conn} connected twice")
        handler = self._handlers.get((self.state, kind, role))
        if handler is None:
            raise AuctionError(
                f"{kind.__name__} from {role.value} not allowed in {self.state.value}"
            )
        return handler

    @property
    def buyers_connected(self) -> int:
        """Return the number of buyers whose connection is open."""
        return sum(1 for buyer in self._buyers.values() if buyer.present)

    # -- helpers ----------------------------------------------------------------

    def _party(self, conn: int) -> _Party:
        seller = self._seller
        if seller is not None and seller.conn == conn:
            return seller
        return self._buyers[conn]

    def _send(self, conn: int, data: bytes) -> None:
        self._actions.append(Send(conn, data))

    def _log(self, kind: LogKind, *args: object) -> None:
        self._actions.append(Log(kind, args))

    def _enter(self, state: State) -> None:
        self.state = state
        self._log(LogKind.STATE, state)

    def _close(self, party: _Party) -> None:
        """Close a party's connection (its final line, if any, was sent)."""
        if party.present:
            party.present = False
            self._actions.append(Close(party.conn))

    def _final(self, conn: int, data: bytes) -> None:
        """Send a final line to a connection that is no party (BUSY)."""
        self._send(conn, data)
        self._actions.append(Close(conn))

    def _final_to(self, party: _Party, data: bytes) -> None:
        """Send a party its final line and close it."""
        if party.present:
            self._send(party.conn, data)
        self._close(party)

    # -- handlers shared by several states --------------------------------------

    def _nothing(self, event: Event) -> None:
        pass

    def _busy(self, event: Connected) -> None:
        self._log(LogKind.BUSY, event.peer, self.state)
        self._final(event.conn, protocol.busy())

    def _done(self, event: LineReceived) -> None:
        self._send(event.conn, protocol.done())

    def _notyet(self, event: LineReceived) -> None:
        self._send(event.conn, protocol.notyet())

    def _input_ended(self, event: InputEnded) -> None:
        pass  # Half-closed: it sends nothing more but still receives its result.

    def _too_long(self, event: LineTooLong) -> None:
        self._log(LogKind.LINE_TOO_LONG, self._party(event.conn).peer)
        self._send(event.conn, protocol.line_too_long())
        # The line cannot be framed any more: it is a departure.
        self._depart(event.conn)

    def _depart(self, conn: int) -> None:
        """Run the departure transition for ``conn`` in the current state."""
        event = Departed(conn)
        self._transition(event)(event)

    def _left_for_good(self, event: Departed) -> None:
        party = self._party(event.conn)
        if isinstance(party, _Buyer):
            self._log(LogKind.BUYER_LEFT, party.number)
        else:
            self._log(LogKind.SELLER_LEFT)
        self._close(party)

    # -- waiting-seller ---------------------------------------------------------

    def _seller_or_busy(self, event: Connected) -> None:
        if self._seller is not None or self._stopping:
            self._busy(event)
            return
        self._seller = _Party(event.conn, event.peer)
        self.deadline = self._now + self.request_timeout
        self._log(LogKind.SELLER_CONNECTED, event.peer)
        self._send(event.conn, protocol.role_seller())
        self._send(event.conn, protocol.request())

    def _seller_request(self, event: LineReceived) -> None:
        seller = self._seller
        assert seller is not None
        try:
            request = protocol.parse_request(event.line, self.max_buyers)
        except InvalidInput as exc:
            self._log(LogKind.INVALID_REQUEST, seller.peer, str(exc))
            self._send(seller.conn, protocol.invalid_request())
            self._send(seller.conn, protocol.request())
            return
        self.deadline = None
        self._auction = _Auction(request, seller, self._now)
        self._send(seller.conn, protocol.start())
        self._log(
            LogKind.REQUEST_ACCEPTED, request.pricing, request.min_price, request.buyers,
            request.item,
        )
        self._enter(State.WAITING_BUYERS)

    def _seller_left_early(self, event: InputEnded | Departed) -> None:
        seller = self._seller
        assert seller is not None
        self._log(LogKind.SELLER_LEFT_EARLY, seller.peer)
        self._drop_seller(None)

    def _drop_seller(self, line: bytes | None) -> None:
        """Let the seller go before any request was accepted (with ``line``)."""
        seller = self._seller
        assert seller is not None
        if line is None:
            self._close(seller)
        else:
            self._final_to(seller, line)
        self._seller = None
        self.deadline = None

    def _request_deadline(self, event: Tick) -> None:
        seller = self._seller
        assert seller is not None  # the deadline runs only while there is one
        self._log(LogKind.SELLER_TIMEOUT, seller.peer)
        self._drop_seller(protocol.timeout())

    # -- waiting-buyers ---------------------------------------------------------

    def _add_buyer(self, event: Connected) -> None:
        auction = self._auction
        assert auction is not None
        buyer = _Buyer(event.conn, event.peer, number=self._next_number)
        self._next_number += 1
        self._buyers[event.conn] = buyer
        self._log(LogKind.BUYER_CONNECTED, buyer.number, event.peer)
        self._send(event.conn, protocol.role_buyer(buyer.number))
        joined = len(self._buyers)  # all present: one that leaves now is removed
        needed = auction.request.buyers
        if joined < needed:
            self._send(event.conn, protocol.waiting(joined, needed))
            return
        # The count is complete: bidding starts for everyone at once.
        self._log(LogKind.BIDDING_STARTS)
        self._enter(State.BIDDING)
        self._undecided = joined
        self.deadline = self._now + self.bid_timeout
        for other in self._buyers.values():
            self._send(other.conn, protocol.bid())

    def _buyer_left_waiting(self, event: InputEnded | Departed) -> None:
        buyer = self._buyers.pop(event.conn)
        self._log(LogKind.BUYER_LEFT_WAITING, buyer.number)
        self._close(buyer)

    def _seller_left_waiting(self, event: Departed) -> None:
        seller = self._seller
        assert seller is not None
        self._log(LogKind.SELLER_LEFT_WAITING)
        self._close(seller)
        self._cancel(CancelReason.SELLER_LEFT)

    # -- bidding ----------------------------------------------------------------

    def _bid(self, event: LineReceived) -> None:
        buyer = self._buyers[event.conn]
        if buyer.bid is not None:
            self._send(buyer.conn, protocol.done())
            return
        try:
            amount = protocol.parse_bid(event.line)
        except InvalidInput:
            self._log(LogKind.INVALID_BID, buyer.number)
            self._send(buyer.conn, protocol.invalid_bid())
            self._send(buyer.conn, protocol.bid())
            return
        auction = self._auction
        assert auction is not None
        buyer.bid = amount
        auction.bids.append(BidRecord(buyer.number, amount, len(auction.bids) + 1, self._now))
        self._send(buyer.conn, protocol.accepted())
        self._log(LogKind.BID, buyer.number, amount)
        self._decided()

    def _decided(self) -> None:
        """One undecided buyer fewer; settle when none is left."""
        self._undecided -= 1
        if self._undecided == 0:
            self._settle()

    def _buyer_input_ended_bidding(self, event: InputEnded) -> None:
        buyer = self._buyers[event.conn]
        buyer.input_open = False
        if buyer.bid is None:
            # It can never bid now: an abstention, but it still gets the result.
            self._log(LogKind.ABSTAINS, buyer.number)
            self._decided()

    def _buyer_left_bidding(self, event: Departed) -> None:
        buyer = self._buyers[event.conn]
        self._left_for_good(event)
        if buyer.bid is None and buyer.input_open:
            self._decided()  # an abstention; a bid already in stands

    def _bid_deadline(self, event: Tick) -> None:
        self._log(LogKind.BID_DEADLINE, self._undecided)
        self._settle()

    def _settle(self) -> None:
        auction = self._auction
        assert auction is not None
        request = auction.request
        outcome = settle(
            request.pricing, request.min_price, [(b.buyer, b.amount) for b in auction.bids]
        )
        self.deadline = None
        self._enter(State.FINISHING)
        item = request.item
        winner_peer = ""
        if outcome.sold:
            self._log(LogKind.SOLD, outcome.highest, outcome.price)
            seller_line = protocol.sold(outcome.price, item)
        else:
            self._log(LogKind.UNSOLD, outcome.highest, request.min_price)
            seller_line = protocol.unsold(outcome.highest, item)
        self._finals = [(auction.seller, seller_line)]
        won = protocol.won(outcome.price, item)
        lost = protocol.lost(item)
        for buyer in self._buyers.values():
            if outcome.winner == buyer.number:
                winner_peer = buyer.peer
                self._finals.append((buyer, won))
            else:
                self._finals.append((buyer, lost if outcome.sold else seller_line))
        self._record("sold" if outcome.sold else "unsold", None, outcome, winner_peer)

    # -- finishing and cancelling -------------------------------------------------

    def _record(
        self, result: str, reason: CancelReason | None, outcome: Outcome, winner_peer: str
    ) -> None:
        auction = self._auction
        assert auction is not None
        request = auction.request
        self._actions.append(
            Record(
                AuctionRecord(
                    item=request.item,
                    pricing=request.pricing,
                    min_price=request.min_price,
                    buyers_requested=request.buyers,
                    buyers_connected=len(self._buyers),
                    outcome=result,
                    reason=reason,
                    winner=outcome.winner,
                    winner_peer=winner_peer,
                    highest=outcome.highest,
                    price=outcome.price,
                    started_at=auction.started_at,
                    ended_at=self._now,
                    seller_peer=auction.seller.peer,
                    bids=tuple(auction.bids),
                )
            )
        )

    def _cancel(self, reason: CancelReason) -> None:
        """End the auction under way as cancelled; finals wait for the ledger."""
        auction = self._auction
        assert auction is not None
        self._log(LogKind.CANCELLED, reason)
        self.deadline = None
        if self.state is not State.FINISHING:
            self._enter(State.FINISHING)
        message = protocol.cancelled(reason)
        self._finals = [(auction.seller, message)]
        self._finals += [(buyer, message) for buyer in self._buyers.values()]
        highest = max((b.amount for b in auction.bids), default=0)
        self._record("cancelled", reason, Outcome(False, highest, 0, None), "")

    def _announce(self, event: Recorded) -> None:
        """The record is durable: send every final line, close, start afresh."""
        for party, line in self._finals:
            self._final_to(party, line)
        self._finals = []
        self._seller = None
        self._buyers = {}
        self._auction = None
        self._undecided = 0
        self._next_number = 1
        self._enter(State.WAITING_SELLER)

    def _shutdown(self, event: Shutdown) -> None:
        """Stop: every connected client gets ``CANCELLED shutdown``.

        A started auction is recorded as cancelled first; a seller still
        composing its request has nothing to record and is told at once.
        """
        if self._stopping:
            return
        self._stopping = True
        if self._auction is None:
            if self._seller is not None:
                self._drop_seller(protocol.cancelled(CancelReason.SHUTDOWN))
            return
        self._cancel(CancelReason.SHUTDOWN)
