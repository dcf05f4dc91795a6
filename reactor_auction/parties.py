"""Who takes part in the auction under way, as the machine keeps them: the
seller, the buyers, and the round from the accepted request to the result.
Plain data for auction.py; nothing here sends or decides anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import AuctionRecord, BidRecord
from .outcome import Outcome
from .protocol import CancelReason, Request


@dataclass(slots=True, eq=False)
class Party:
    """A connection that became the seller or a buyer."""

    conn: int
    peer: str
    present: bool = True  #: the machine can still write to it (no Close yet)


@dataclass(slots=True, eq=False)
class Buyer(Party):
    number: int = 0  #: from 1, in joining order; never reused in one auction
    bid: int | None = None
    input_open: bool = True  #: it can still send lines


@dataclass(slots=True)
class Round:
    """The auction under way, from the accepted request to the result."""

    request: Request
    seller: Party
    started_at: float
    bids: list[BidRecord] = field(default_factory=list)
    cancelled: CancelReason | None = None  #: why, once it was cancelled

    def record(
        self, outcome: Outcome, winner_peer: str, buyers_connected: int, ended_at: float
    ) -> AuctionRecord:
        """Return what the ledger keeps of this round, settled as ``outcome``."""
        request = self.request
        if self.cancelled is not None:
            result = "cancelled"
        else:
            result = "sold" if outcome.sold else "unsold"
        return AuctionRecord(
            item=request.item,
            pricing=request.pricing,
            min_price=request.min_price,
            buyers_requested=request.buyers,
            buyers_connected=buyers_connected,
            outcome=result,
            reason=self.cancelled,
            winner=outcome.winner,
            winner_peer=winner_peer,
            highest=outcome.highest,
            price=outcome.price,
            started_at=self.started_at,
            ended_at=ended_at,
            seller_peer=self.seller.peer,
            bids=tuple(self.bids),
        )
