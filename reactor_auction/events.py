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

from .protocol import CancelReason, Pricing


class IdentityEnum(enum.Enum):
    """An Enum hashed by identity, in C.

    Members are singletons compared by identity; Enum's own hash is a
    Python-level hash of the name, and these are looked up for every event
    (the transition table's keys, the console's sets of log kinds).
    """

    __hash__ = object.__hash__


# --- the machine's states ----------------------------------------------------------


class State(IdentityEnum):
    """The four states of PROTOCOL.md, and the machine's own fifth."""

    WAITING_SELLER = "waiting-seller"
    WAITING_BUYERS = "waiting-buyers"
    BIDDING = "bidding"
    FINISHING = "finishing"
    #: Not a protocol state: a shutdown has told everyone and nothing is
    #: pending; every newcomer gets BUSY until the shell stops.
    STOPPING = "stopping"


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


class LogKind(IdentityEnum):
    """Every kind of thing a person watching the server is told; text.py words
    each one, filled in with the ``args`` of its ``Log``."""

    # from the auction machine
    SELLER_CONNECTED = "seller_connected"  #: (peer,)
    REQUEST_ACCEPTED = "request_accepted"  #: (pricing, min_price, buyers, item)
    STATE = "state"  #: (state,)
    BUYER_CONNECTED = "buyer_connected"  #: (number, peer)
    BIDDING_STARTS = "bidding_starts"
    BID = "bid"  #: (number, amount)
    SOLD = "sold"  #: (highest, price)
    UNSOLD = "unsold"  #: (highest, min_price)
    BUSY = "busy"  #: (peer, state)
    SELLER_LEFT_EARLY = "seller_left_early"  #: (peer,)
    SELLER_TIMEOUT = "seller_timeout"  #: (peer,)
    SELLER_LEFT_WAITING = "seller_left_waiting"
    BUYER_LEFT_WAITING = "buyer_left_waiting"  #: (number,)
    SELLER_LEFT = "seller_left"
    BUYER_LEFT = "buyer_left"  #: (number,)
    ABSTAINS = "abstains"  #: (number,)
    BID_DEADLINE = "bid_deadline"  #: (buyers that did not bid,)
    CANCELLED = "cancelled"  #: (reason,)
    LINE_TOO_LONG = "line_too_long"  #: (peer,)
    INVALID_REQUEST = "invalid_request"  #: (peer, why)
    INVALID_BID = "invalid_bid"  #: (number,)
    # from the shells that run it (the server, the benchmark baselines)
    READY = "ready"
    LISTENING = "listening"  #: (host, port)
    OPENED = "opened"  #: (conn, peer)
    CLOSED = "closed"  #: (conn, how)
    RECORDED = "recorded"  #: (auction number, ledger path)
    LEDGER_WAITING = "ledger_waiting"  #: (error,)
    LEDGER_FAILED = "ledger_failed"  #: (error,)
    LEDGER_GAVE_UP = "ledger_gave_up"
    SHUTDOWN = "shutdown"
    FD_LIMIT = "fd_limit"  #: (requested, allowed)
    FD_EXHAUSTED = "fd_exhausted"  #: (error text,)
    CONNECTION_ERROR = "connection_error"  #: (conn, error)
    FATAL = "fatal"  #: (error,)


@dataclass(frozen=True, slots=True)
class Log:
    """Something a person watching the server should see; text.py words it."""

    kind: LogKind
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
    pricing: Pricing
    min_price: int
    buyers_requested: int
    buyers_connected: int
    outcome: str  #: "sold", "unsold" or "cancelled"
    reason: CancelReason | None  #: why it was cancelled (None: it was not)
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
