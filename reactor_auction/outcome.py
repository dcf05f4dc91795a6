"""The outcome rule of a sealed-bid auction (PROTOCOL.md, "Outcome"). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .protocol import Pricing


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an auction ended, as settle() decides it."""

    sold: bool
    highest: int  #: the highest bid, 0 when none arrived
    price: int  #: what the winner pays; 0 when unsold
    winner: int | None  #: the winning buyer's number, None when unsold


def settle(pricing: Pricing, min_price: int, bids: Sequence[tuple[int, int]]) -> Outcome:
    """Return the outcome of an auction.

    ``bids`` is (buyer, amount) in arrival order. The highest bid wins and a
    tie goes to the earliest. It is sold when the highest bid is at least
    ``min_price``. First price: the winner pays its bid. Second price: the
    winner pays max(highest of the other bids, min_price).
    """
    winner: int | None = None
    highest = 0
    for buyer, amount in bids:
        if amount > highest:  # strictly greater: ties stay with the earlier bid
            winner, highest = buyer, amount
    if winner is None or highest < min_price:
        return Outcome(False, highest, 0, None)
    if pricing is Pricing.FIRST:
        return Outcome(True, highest, highest, winner)
    others = [amount for buyer, amount in bids if buyer != winner]
    return Outcome(True, highest, max(max(others, default=0), min_price), winner)
