"""The wire vocabulary of PROTOCOL.md: limits, the number rule, the seller's
request, and every server message (built by the server, parsed by clients).

Pure: no sockets, no clock. Every rule here exists in exactly one place; the
state machine, the client and the tests all call these functions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: A line holds at most this many bytes, its terminator included.
MAX_LINE = 1024
#: A number is 1 to this many ASCII digits.
MAX_DIGITS = 12
#: An item name is 1 to this many printable characters.
MAX_ITEM = 255

_DIGITS = frozenset(b"0123456789")


class Pricing(enum.Enum):
    """The pricing rule: the request's ``type`` field on the wire."""

    FIRST = 1  #: the winner pays its own bid
    SECOND = 2  #: the winner pays max(the highest other bid, min_price)


class CancelReason(enum.Enum):
    """Why an auction was cancelled: the word after ``CANCELLED`` on the wire."""

    SELLER_LEFT = "seller-left"
    SHUTDOWN = "shutdown"
    SERVER_ERROR = "server-error"  #: the machine failed; the server exits


class InvalidInput(ValueError):
    """A client line that the protocol rejects (answered with ``INVALID``)."""


class ProtocolError(ValueError):
    """A server line that does not follow the protocol (seen by a client)."""


def decode(line: bytes) -> str:
    """Return *line* as text with surrounding ASCII spaces removed.

    Raises InvalidInput if the bytes are not UTF-8.
    """
    try:
        return line.decode("utf-8").strip(" ")
    except UnicodeDecodeError:
        raise InvalidInput("not UTF-8") from None


def parse_number(text: str) -> int:
    """Return the value of a protocol number: 1 to 12 ASCII digits, nothing else.

    ``int()`` is never applied to unchecked text: it would accept ``+5``,
    ``1_0``, `` 7`` and non-ASCII digits such as ``١٢٣``.
    Raises InvalidInput otherwise.
    """
    # isascii() first: encoding arbitrary text (a lone surrogate) could raise.
    if not text.isascii() or not 1 <= len(text) <= MAX_DIGITS:
        raise InvalidInput(f"not a number: {text!r}")
    raw = text.encode("ascii")
    if not _DIGITS.issuperset(raw):
        raise InvalidInput(f"not a number: {text!r}")
    return int(raw)


def parse_amount(text: str) -> int:
    """Return a money amount (a bid or a minimum price): a number of at least 1.

    Raises InvalidInput otherwise.
    """
    value = parse_number(text)
    if value < 1:
        raise InvalidInput("an amount is at least 1")
    return value


def parse_item(text: str) -> str:
    """Return a trimmed item name of 1 to 255 printable characters.

    Raises InvalidInput otherwise.
    """
    item = text.strip(" ")
    if not 1 <= len(item) <= MAX_ITEM or not item.isprintable():
        raise InvalidInput(f"an item name is 1 to {MAX_ITEM} printable characters")
    return item


@dataclass(frozen=True, slots=True)
class Request:
    """A seller's accepted auction request."""

    pricing: Pricing
    min_price: int
    buyers: int
    item: str


def parse_request(line: bytes, max_buyers: int) -> Request:
    """Return the Request in a seller's line ``<type> <min_price> <buyers> <item>``.

    Fields are separated by one or more ASCII spaces; the item is the rest of
    the line. Raises InvalidInput for anything else.
    """
    rest = decode(line)
    head: list[str] = []
    for _ in range(3):
        token, _, rest = rest.partition(" ")
        head.append(token)
        rest = rest.lstrip(" ")  # runs of spaces separate fields too
    pricing_text, min_text, buyers_text = head
    item_text = rest
    pricing_number = parse_number(pricing_text)
    try:
        pricing = Pricing(pricing_number)
    except ValueError:
        raise InvalidInput("type is 1 or 2") from None
    min_price = parse_amount(min_text)
    buyers = parse_number(buyers_text)
    if not 1 <= buyers <= max_buyers:
        raise InvalidInput(f"buyers is 1 to {max_buyers}")
    return Request(pricing, min_price, buyers, parse_item(item_text))


def parse_bid(line: bytes) -> int:
    """Return the amount of a buyer's bid line. Raises InvalidInput."""
    return parse_amount(decode(line))


# --- server messages -------------------------------------------------------

def encode(keyword: str, *args: object) -> bytes:
    """Return one server line: the keyword and its arguments, ``\\n``-terminated."""
    if args:
        return (" ".join((keyword, *map(str, args))) + "\n").encode("utf-8")
    return (keyword + "\n").encode("ascii")


# The server's lines, one builder each (the lines without arguments are built
# once here: the machine sends them for every event).

_ROLE_SELLER = encode("ROLE", "SELLER")
_REQUEST = encode("REQUEST")
_INVALID_REQUEST = encode("INVALID", "request")
_START = encode("START")
_BID = encode("BID")
_INVALID_BID = encode("INVALID", "bid")
_ACCEPTED = encode("ACCEPTED")
_NOTYET = encode("NOTYET")
_DONE = encode("DONE")
_BUSY = encode("BUSY")
_TIMEOUT = encode("TIMEOUT")
_LINE_TOO_LONG = encode("ERROR", "line-too-long")
_CANCELLED = {reason: encode("CANCELLED", reason.value) for reason in CancelReason}


def role_seller() -> bytes:
    """Return ``ROLE SELLER``: the first connection is the seller."""
    return _ROLE_SELLER


def request() -> bytes:
    """Return ``REQUEST``: the seller is asked for its auction request."""
    return _REQUEST


def invalid_request() -> bytes:
    """Return ``INVALID request`` (``REQUEST`` follows)."""
    return _INVALID_REQUEST


def start() -> bytes:
    """Return ``START``: the request is accepted."""
    return _START


def role_buyer(number: int) -> bytes:
    """Return ``ROLE BUYER <number>``."""
    return encode("ROLE", "BUYER", number)


def waiting(connected: int, needed: int) -> bytes:
    """Return ``WAITING <connected> <needed>``."""
    return encode("WAITING", connected, needed)


def bid() -> bytes:
    """Return ``BID``: the buyer is asked for its bid."""
    return _BID


def invalid_bid() -> bytes:
    """Return ``INVALID bid`` (``BID`` follows)."""
    return _INVALID_BID


def accepted() -> bytes:
    """Return ``ACCEPTED``: the bid is in, and final."""
    return _ACCEPTED


def notyet() -> bytes:
    """Return ``NOTYET``: a buyer's line before the bidding started."""
    return _NOTYET


def done() -> bytes:
    """Return ``DONE``: a line after the client's part is over."""
    return _DONE


def sold(price: int, item: str) -> bytes:
    """Return ``SOLD <price> <item>``, the seller's result of a sale."""
    return encode("SOLD", price, item)


def unsold(highest: int, item: str) -> bytes:
    """Return ``UNSOLD <highest> <item>``, everyone's result when not sold."""
    return encode("UNSOLD", highest, item)


def won(price: int, item: str) -> bytes:
    """Return ``WON <price> <item>``, the winner's result."""
    return encode("WON", price, item)


def lost(item: str) -> bytes:
    """Return ``LOST <item>``, the result of every other buyer of a sale."""
    return encode("LOST", item)


def busy() -> bytes:
    """Return ``BUSY``: a newcomer the server cannot take now."""
    return _BUSY


def timeout() -> bytes:
    """Return ``TIMEOUT``: the seller sent no valid request in time."""
    return _TIMEOUT


def cancelled(reason: CancelReason) -> bytes:
    """Return ``CANCELLED <reason>``."""
    return _CANCELLED[reason]


def line_too_long() -> bytes:
    """Return ``ERROR line-too-long``."""
    return _LINE_TOO_LONG


#: What a shell tells every client when the machine itself failed (raised):
#: nothing the machine says can be trusted any more, so the auction is over.
SERVER_ERROR_LINE = cancelled(CancelReason.SERVER_ERROR)


# Field kinds in the grammar below.
NUM = "num"  # a protocol number
WORD = "word"  # one token of ASCII letters and hyphens
ITEM = "item"  # the rest of the line (must be last)

#: The grammar of every server line: keyword -> its fields, in order.
#: ``ROLE`` is the one keyword with two forms; see parse_server_line.
SERVER_GRAMMAR: dict[str, tuple[str, ...]] = {
    "ROLE SELLER": (),
    "ROLE BUYER": (NUM,),
    "REQUEST": (),
    "INVALID": (WORD,),
    "START": (),
    "WAITING": (NUM, NUM),
    "BID": (),
    "ACCEPTED": (),
    "NOTYET": (),
    "DONE": (),
    "SOLD": (NUM, ITEM),
    "UNSOLD": (NUM, ITEM),
    "WON": (NUM, ITEM),
    "LOST": (ITEM,),
    "BUSY": (),
    "TIMEOUT": (),
    "CANCELLED": (WORD,),
    "ERROR": (WORD,),
}

#: Server lines after which the server closes the connection.
FINAL = frozenset({"SOLD", "UNSOLD", "WON", "LOST", "BUSY", "TIMEOUT", "CANCELLED", "ERROR"})


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One parsed server line."""

    keyword: str  #: a key of SERVER_GRAMMAR, e.g. "ROLE BUYER" or "SOLD"
    numbers: tuple[int, ...] = ()
    word: str = ""
    item: str = ""

    @property
    def final(self) -> bool:
        """True if the server closes the connection after this line."""
        return self.keyword in FINAL


def parse_server_line(line: bytes) -> ServerMessage:
    """Return the ServerMessage in one server line (terminator removed).

    Raises ProtocolError for an unknown keyword or malformed arguments.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("server line is not UTF-8") from None
    keyword, _, rest = text.partition(" ")
    if keyword == "ROLE":
        role, _, rest = rest.partition(" ")
        keyword = f"ROLE {role}"
    fields = SERVER_GRAMMAR.get(keyword)
    if fields is None:
        raise ProtocolError(f"unknown server message: {text[:80]!r}")
    numbers: list[int] = []
    word = item = ""
    for field in fields:
        if field == ITEM:
            value, rest = rest, ""
        else:
            value, _, rest = rest.partition(" ")
        try:
            if field == NUM:
                numbers.append(parse_number(value))
            elif field == WORD:
                if not value or not value.replace("-", "").isalpha() or not value.isascii():
                    raise InvalidInput(value)
                word = value
            else:
                item = parse_item(value)
        except InvalidInput:
            raise ProtocolError(f"malformed server message: {text[:80]!r}") from None
    if rest:
        raise ProtocolError(f"malformed server message: {text[:80]!r}")
    return ServerMessage(keyword, tuple(numbers), word, item)
