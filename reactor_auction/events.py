"""What goes into the auction machine and what comes out of it.

Events go in (a connection arrived, a line arrived, input ended, a connection
was lost, time passed, the ledger committed, shut down), each fed with the
time ``now`` from a monotonic clock; actions come out (send these bytes, close
that connection, log this, record that). Connections are plain integers
chosen by the shell. Pure data: no sockets, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# --- the machine's states ----------------------------------------------------------


class State(enum.Enum):
    """The four states of PROTOCOL.md."""

    # Members are singletons compared by identity: hash them by identity too,
    # in C, instead of Enum's Python-level hash of the name (every event looks
    # up the transition table with a state and a role in its key).
    __hash__ = object.__hash__

    WAITING_SELLER = "waiting-seller"
    WAITING_BUYERS = "waiting-buyers"
    BIDDING = "bidding"
    FINISHING = "finishing"


# --- events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    conn: int
    peer: str  #: "ip:port", for logs and the record


@dataclass(frozen=True, slots=True)
class LineReceived:
    conn: int
    line: bytes  #: one framed line, terminator removed


@dataclass(frozen=True, slots=True)
class LineTooLong:
    conn: int


@dataclass(frozen=True, slots=True)
class InputEnded:
    """The peer will send nothing more (EOF); it may still be reading."""

    conn: int


@dataclass(frozen=True, slots=True)
class Departed:
    """The connection is gone (reset, write failure, output overflow)."""

    conn: int


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; sent when ``Auction.deadline`` is reached."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The ledger committed the last ``Record`` (or there is no ledger)."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The server is stopping (SIGINT/SIGTERM)."""


Event = Connected | LineReceived | LineTooLong | InputEnded | Departed | Tick | Recorded | Shutdown


# --- actions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``conn`` once everything sent to it is flushed."""

    conn: int


@dataclass(frozen=True, slots=True)
class Log:
    """Something a person watching the server should see; text.py words it."""

    kind: str
    args: tuple[object, ...] = ()


# --- what the ledger keeps ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BidRecord:
    buyer: int  #: the buyer's number in this auction
    amount: int
    order: int  #: arrival order, from 1
    at: float  #: monotonic time of arrival


@dataclass(frozen=True, slots=True)
class AuctionRecord:
    """What the ledger keeps of one auction that reached START."""

    item: str
    kind: int
    min_price: int
    buyers_requested: int
    buyers_connected: int
    outcome: str  #: "sold", "unsold" or "cancelled"
    reason: str  #: why it was cancelled, else ""
    winner: int | None
    winner_peer: str
    highest: int
    price: int
    started_at: float  #: monotonic; the ledger converts to wall time
    ended_at: float
    seller_peer: str
    bids: tuple[BidRecord, ...]


@dataclass(frozen=True, slots=True)
class Record:
    """Commit ``record``, then feed ``Recorded``; results wait for it."""

    record: AuctionRecord


Action = Send | Close | Log | Record
