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

The transition table ``TRANSITIONS`` is plain data, as in h11's
``_state.py``: (state, event type, role) -> the handler and the states it
may lead to. A key that is not in it is a bug in the caller and raises
``AuctionError``; a handler entering a state its entry does not name is a
bug in the machine and raises ``AuctionError`` too. tools/diagram.py draws
the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import protocol
from .events import (
    Action,
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
from .parties import Buyer, Party, Round
from .protocol import CancelReason, InvalidInput


class Role(IdentityEnum):
    """Who an event is about."""

    NEW = "new"  # a connection the machine has not seen
    SELLER = "seller"
    BUYER = "buyer"
    NONE = "none"  # events about no connection: time, the ledger, shutdown


_TICK = Tick()


class AuctionError(RuntimeError):
    """An event the transition table does not allow (a bug in the caller), or
    a state change it does not allow (a bug in the machine)."""


# --- the machine ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One entry of the table: who handles the event, and where it may lead."""

    #: An Auction method, called with the machine and the event.
    handler: Callable[[Auction, Any], None]
    #: The states the handler may enter; none: the state stays as it is.
    targets: frozenset[State] = frozenset()


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
        self._seller: Party | None = None
        self._buyers: dict[int, Buyer] = {}  # conn -> buyer, in joining order
        self._next_number = 1
        self._undecided = 0  # buyers that can still bid and have not
        self._round: Round | None = None
        self._last_lines: list[tuple[Party, bytes]] = []  # sent after Recorded
        self._actions: list[Action] = []
        self._now = 0.0
        self._running: Transition | None = None  # the entry whose handler runs

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
        changed then. Raises AuctionError too if a handler enters a state
        that its entry does not name: a bug in the machine.
        """
        transition = self._transition(event)
        self._now = now
        actions: list[Action] = []
        self._actions = actions
        due = self.deadline is not None and now >= self.deadline
        if isinstance(event, Tick):
            if due:
                self._running = transition
                transition.handler(self, event)
            return actions
        if due:
            self._running = self._transition(_TICK)
            self._running.handler(self, _TICK)
            try:
                transition = self._transition(event)
            except AuctionError:
                return actions  # its connection got TIMEOUT and was closed
        self._running = transition
        transition.handler(self, event)
        return actions

    def _transition(self, event: Event) -> Transition:
        """Return the table's entry for ``event`` in the current state.

        The event's role: NONE for an event of no connection, SELLER or BUYER
        for a present party's connection, NEW for a connection not seen
        before. Raises AuctionError when the table has no entry for it, and
        for an event of a connection the machine does not know (or a second
        Connected for one it does).
        """
        event_type = type(event)
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
            elif event_type is Connected:
                role = Role.NEW
            else:
                raise AuctionError(f"{event_type.__name__} for unknown connection {conn}")
            if event_type is Connected and role is not Role.NEW:
                raise AuctionError(f"connection {conn} connected twice")
        transition = TRANSITIONS.get((self.state, event_type, role))
        if transition is None:
            raise AuctionError(
                f"{event_type.__name__} from {role.value} not allowed in {self.state.value}"
            )
        return transition

    @property
    def buyers_connected(self) -> int:
        """Return the number of buyers whose connection is open."""
        return sum(1 for buyer in self._buyers.values() if buyer.present)

    # -- helpers ----------------------------------------------------------------

    def _party(self, conn: int) -> Party:
        seller = self._seller
        if seller is not None and seller.conn == conn:
            return seller
        return self._buyers[conn]

    def _send(self, conn: int, data: bytes) -> None:
        self._actions.append(Send(conn, data))

    def _log(self, kind: LogKind, *args: object) -> None:
        self._actions.append(Log(kind, args))

    def _enter(self, state: State) -> None:
        """Move to ``state``; raises AuctionError unless the running
        transition's entry names it."""
        running = self._running
        if running is None or state not in running.targets:
            raise AuctionError(
                f"{self.state.value} -> {state.value} is not a target of this transition"
            )
        self.state = state
        if state is not State.STOPPING:  # the console shows the protocol's states
            self._log(LogKind.STATE, state)

    def _close(self, party: Party) -> None:
        """Close a party's connection (its final line, if any, was sent)."""
        if party.present:
            party.present = False
            self._actions.append(Close(party.conn))

    def _close_with(self, party: Party, line: bytes) -> None:
        """Send a party its final line and close it."""
        if party.present:
            self._send(party.conn, line)
        self._close(party)

    # -- handlers shared by several states --------------------------------------

    def _nothing(self, event: Event) -> None:
        pass

    def _busy(self, event: Connected) -> None:
        """Turn a newcomer away: it never becomes a party."""
        self._log(LogKind.BUSY, event.peer, self.state)
        self._send(event.conn, protocol.busy())
        self._actions.append(Close(event.conn))

    def _answer_done(self, event: LineReceived) -> None:
        self._send(event.conn, protocol.done())

    def _answer_notyet(self, event: LineReceived) -> None:
        self._send(event.conn, protocol.notyet())

    def _input_ended(self, event: InputEnded) -> None:
        pass  # From bidding on: it sends nothing more but still gets its result.

    def _too_long(self, event: LineTooLong) -> None:
        self._log(LogKind.LINE_TOO_LONG, self._party(event.conn).peer)
        self._send(event.conn, protocol.line_too_long())
        # The line cannot be framed any more: it is a departure.
        self._depart(event.conn)

    def _depart(self, conn: int) -> None:
        """Run the departure transition for ``conn`` in the current state
        (the entry that runs it names the same targets)."""
        event = Departed(conn)
        outer = self._running
        self._running = departure = self._transition(event)
        departure.handler(self, event)
        self._running = outer

    def _left_for_good(self, event: Departed) -> None:
        party = self._party(event.conn)
        if isinstance(party, Buyer):
            self._log(LogKind.BUYER_LEFT, party.number)
        else:
            self._log(LogKind.SELLER_LEFT)
        self._close(party)

    # -- waiting-seller ---------------------------------------------------------

    def _seller_or_busy(self, event: Connected) -> None:
        if self._seller is not None:
            self._busy(event)
            return
        self._seller = Party(event.conn, event.peer)
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
        self._round = Round(request, seller, self._now)
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
            self._close_with(seller, line)
        self._seller = None
        self.deadline = None

    def _request_deadline(self, event: Tick) -> None:
        seller = self._seller
        assert seller is not None  # the deadline runs only while there is one
        self._log(LogKind.SELLER_TIMEOUT, seller.peer)
        self._drop_seller(protocol.timeout())

    # -- waiting-buyers ---------------------------------------------------------

    def _add_buyer(self, event: Connected) -> None:
        current = self._round
        assert current is not None
        buyer = Buyer(event.conn, event.peer, number=self._next_number)
        self._next_number += 1
        self._buyers[event.conn] = buyer
        self._log(LogKind.BUYER_CONNECTED, buyer.number, event.peer)
        self._send(event.conn, protocol.role_buyer(buyer.number))
        joined = len(self._buyers)  # all present: one that leaves now is removed
        needed = current.request.buyers
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

    def _seller_left_waiting(self, event: InputEnded | Departed) -> None:
        """The seller left while buyers wait: the auction is cancelled. Before
        bidding, end of input is leaving as a reset is (docs/PROTOCOL.md,
        "Leaving")."""
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
        current = self._round
        assert current is not None
        buyer.bid = amount
        current.bids.append(BidRecord(buyer.number, amount, len(current.bids) + 1, self._now))
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
        current = self._round
        assert current is not None
        request = current.request
        outcome = settle(
            request.pricing, request.min_price, [(b.buyer, b.amount) for b in current.bids]
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
        self._last_lines = [(current.seller, seller_line)]
        won = protocol.won(outcome.price, item)
        lost = protocol.lost(item)
        for buyer in self._buyers.values():
            if outcome.winner == buyer.number:
                winner_peer = buyer.peer
                self._last_lines.append((buyer, won))
            else:
                self._last_lines.append((buyer, lost if outcome.sold else seller_line))
        self._record(outcome, winner_peer)

    # -- finishing and cancelling -------------------------------------------------

    def _record(self, outcome: Outcome, winner_peer: str) -> None:
        current = self._round
        assert current is not None
        record = current.record(outcome, winner_peer, len(self._buyers), self._now)
        self._actions.append(Record(record))

    def _cancel(self, reason: CancelReason) -> None:
        """End the auction under way as cancelled; finals wait for the ledger."""
        current = self._round
        assert current is not None
        current.cancelled = reason
        self._log(LogKind.CANCELLED, reason)
        self.deadline = None
        if self.state is not State.FINISHING:
            self._enter(State.FINISHING)
        message = protocol.cancelled(reason)
        self._last_lines = [(current.seller, message)]
        self._last_lines += [(buyer, message) for buyer in self._buyers.values()]
        highest = max((b.amount for b in current.bids), default=0)
        self._record(Outcome(False, highest, 0, None), "")

    def _announce(self, event: Recorded) -> None:
        """The record is durable: send every final line, close, start afresh
        (or stop, when the auction was cancelled by a shutdown)."""
        current = self._round
        assert current is not None
        for party, line in self._last_lines:
            self._close_with(party, line)
        self._last_lines = []
        self._seller = None
        self._buyers = {}
        self._round = None
        self._undecided = 0
        self._next_number = 1
        stopping = current.cancelled is CancelReason.SHUTDOWN
        self._enter(State.STOPPING if stopping else State.WAITING_SELLER)

    # -- shutdown -----------------------------------------------------------------
    #
    # Every connected client gets ``CANCELLED shutdown``. A started auction is
    # recorded as cancelled first; a seller still composing its request has
    # nothing to record and is told at once.

    def _stop_before_start(self, event: Shutdown) -> None:
        if self._seller is not None:
            self._drop_seller(protocol.cancelled(CancelReason.SHUTDOWN))
        self._enter(State.STOPPING)

    def _shutdown_cancels(self, event: Shutdown) -> None:
        self._cancel(CancelReason.SHUTDOWN)

    def _shutdown_while_finishing(self, event: Shutdown) -> None:
        """The result waiting for the ledger is replaced by the cancellation
        (a second shutdown changes nothing)."""
        current = self._round
        assert current is not None
        if current.cancelled is not CancelReason.SHUTDOWN:
            self._cancel(CancelReason.SHUTDOWN)


# --- the table -------------------------------------------------------------------

_A = Auction
_WS, _WB = State.WAITING_SELLER, State.WAITING_BUYERS
_BIDDING, _FINISHING, _STOPPING = State.BIDDING, State.FINISHING, State.STOPPING
_SELLER, _BUYER, _NEW, _NONE = Role.SELLER, Role.BUYER, Role.NEW, Role.NONE


def _to(*states: State) -> frozenset[State]:
    return frozenset(states)


#: (state, event type, role) -> the handler and the states it may lead to.
TRANSITIONS: dict[tuple[State, type, Role], Transition] = {
    # waiting-seller: the first connection becomes the seller.
    (_WS, Connected, _NEW): Transition(_A._seller_or_busy),
    (_WS, LineReceived, _SELLER): Transition(_A._seller_request, _to(_WB)),
    (_WS, LineTooLong, _SELLER): Transition(_A._too_long),
    (_WS, InputEnded, _SELLER): Transition(_A._seller_left_early),
    (_WS, Departed, _SELLER): Transition(_A._seller_left_early),
    (_WS, Tick, _NONE): Transition(_A._request_deadline),
    (_WS, Shutdown, _NONE): Transition(_A._stop_before_start, _to(_STOPPING)),
    # waiting-buyers: connections become buyers until the count is reached.
    (_WB, Connected, _NEW): Transition(_A._add_buyer, _to(_BIDDING)),
    (_WB, LineReceived, _SELLER): Transition(_A._answer_done),
    (_WB, LineReceived, _BUYER): Transition(_A._answer_notyet),
    (_WB, LineTooLong, _SELLER): Transition(_A._too_long, _to(_FINISHING)),
    (_WB, LineTooLong, _BUYER): Transition(_A._too_long),
    (_WB, InputEnded, _SELLER): Transition(_A._seller_left_waiting, _to(_FINISHING)),
    (_WB, InputEnded, _BUYER): Transition(_A._buyer_left_waiting),
    (_WB, Departed, _SELLER): Transition(_A._seller_left_waiting, _to(_FINISHING)),
    (_WB, Departed, _BUYER): Transition(_A._buyer_left_waiting),
    (_WB, Tick, _NONE): Transition(_A._nothing),
    (_WB, Shutdown, _NONE): Transition(_A._shutdown_cancels, _to(_FINISHING)),
    # bidding: one bid per connected buyer, until all are in or time is up.
    (_BIDDING, Connected, _NEW): Transition(_A._busy),
    (_BIDDING, LineReceived, _SELLER): Transition(_A._answer_done),
    (_BIDDING, LineReceived, _BUYER): Transition(_A._bid, _to(_FINISHING)),
    (_BIDDING, LineTooLong, _SELLER): Transition(_A._too_long),
    (_BIDDING, LineTooLong, _BUYER): Transition(_A._too_long, _to(_FINISHING)),
    (_BIDDING, InputEnded, _SELLER): Transition(_A._input_ended),
    (_BIDDING, InputEnded, _BUYER): Transition(_A._buyer_input_ended_bidding, _to(_FINISHING)),
    (_BIDDING, Departed, _SELLER): Transition(_A._left_for_good),
    (_BIDDING, Departed, _BUYER): Transition(_A._buyer_left_bidding, _to(_FINISHING)),
    (_BIDDING, Tick, _NONE): Transition(_A._bid_deadline, _to(_FINISHING)),
    (_BIDDING, Shutdown, _NONE): Transition(_A._shutdown_cancels, _to(_FINISHING)),
    # finishing: the result waits for the ledger, then goes out.
    (_FINISHING, Connected, _NEW): Transition(_A._busy),
    (_FINISHING, LineReceived, _SELLER): Transition(_A._answer_done),
    (_FINISHING, LineReceived, _BUYER): Transition(_A._answer_done),
    (_FINISHING, LineTooLong, _SELLER): Transition(_A._too_long),
    (_FINISHING, LineTooLong, _BUYER): Transition(_A._too_long),
    (_FINISHING, InputEnded, _SELLER): Transition(_A._input_ended),
    (_FINISHING, InputEnded, _BUYER): Transition(_A._input_ended),
    (_FINISHING, Departed, _SELLER): Transition(_A._left_for_good),
    (_FINISHING, Departed, _BUYER): Transition(_A._left_for_good),
    (_FINISHING, Tick, _NONE): Transition(_A._nothing),
    (_FINISHING, Recorded, _NONE): Transition(_A._announce, _to(_WS, _STOPPING)),
    (_FINISHING, Shutdown, _NONE): Transition(_A._shutdown_while_finishing),
    # stopping: everyone was told; the shell stops once their lines are out.
    (_STOPPING, Connected, _NEW): Transition(_A._busy),
    (_STOPPING, Tick, _NONE): Transition(_A._nothing),
    (_STOPPING, Shutdown, _NONE): Transition(_A._nothing),
}
