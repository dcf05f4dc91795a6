"""Unit tests of reactor_auction.protocol: the number rule, the seller's request,
bids, and every server message (built by its builder or ``encode``, read by
``parse_server_line``). No network."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor_auction import protocol
from reactor_auction.protocol import (
    FINAL,
    MAX_DIGITS,
    MAX_ITEM,
    SERVER_GRAMMAR,
    CancelReason,
    InvalidInput,
    Pricing,
    ProtocolError,
    Request,
    ServerMessage,
    encode,
    parse_amount,
    parse_bid,
    parse_number,
    parse_request,
    parse_server_line,
)

FIRST, SECOND = Pricing.FIRST, Pricing.SECOND

# --- the number rule ---------------------------------------------------------------

NOT_NUMBERS = [
    "",
    "+5",
    "-1",
    "1_0",
    "1 0",
    " 7",  # parse_number sees a field: spaces are trimmed only around the whole line
    "7 ",
    "\t7",
    "7\n",
    "1.5",
    "1e3",
    "0x10",
    "١٢٣",  # Arabic-Indic digits: int() accepts them, the protocol does not
    "１２３",  # fullwidth digits
    "²",  # superscript two: str.isdigit() says True
    "1" * (MAX_DIGITS + 1),
    "abc",
    "\ud800",  # a lone surrogate (not from the wire, but the rule must still hold)
    "\udcff",  # a surrogate-escaped byte
]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_number_rule_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("007", 7), ("120", 120), ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1)],
)
def test_number_rule_accepts(text: str, value: int) -> None:
    assert parse_number(text) == value


@given(st.text(max_size=20))
def test_number_rule_is_exactly_ascii_digits(text: str) -> None:
    """Any text either is 1-12 ASCII digits and parses, or raises InvalidInput."""
    ok = 1 <= len(text) <= MAX_DIGITS and all("0" <= c <= "9" for c in text)
    if ok:
        assert parse_number(text) == int(text)
    else:
        with pytest.raises(InvalidInput):
            parse_number(text)


@pytest.mark.parametrize("text", ["0", "00", "000000000000"])
def test_amount_is_at_least_one(text: str) -> None:
    assert parse_number(text) == 0
    with pytest.raises(InvalidInput):
        parse_amount(text)


def test_amount_accepts_the_largest_number() -> None:
    assert parse_amount("1") == 1
    assert parse_amount("999999999999") == 999_999_999_999


# --- the seller's request ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (b"2 100 3 WolfPackSword", Request(SECOND, 100, 3, "WolfPackSword")),
        (b"1 1 1 X", Request(FIRST, 1, 1, "X")),
        # runs of spaces separate fields; spaces around the line are trimmed
        (b"  1   100    2     Old   Map  ", Request(FIRST, 100, 2, "Old   Map")),
        (b"2 100 3 Wolf Pack Sword", Request(SECOND, 100, 3, "Wolf Pack Sword")),
        (b"1 007 0002 x", Request(FIRST, 7, 2, "x")),
        ("1 5 1 Épée à deux mains".encode(), Request(FIRST, 5, 1, "Épée à deux mains")),
        (b"1 5 10 " + b"x" * MAX_ITEM, Request(FIRST, 5, 10, "x" * MAX_ITEM)),
        (b"1 5 1 " + "é".encode() * MAX_ITEM, Request(FIRST, 5, 1, "é" * MAX_ITEM)),
        (b"1 999999999999 1 big", Request(FIRST, 999_999_999_999, 1, "big")),
    ],
)
def test_request_valid(line: bytes, want: Request) -> None:
    assert parse_request(line, max_buyers=10) == want


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b" ",
        b"some wrong input",
        b"2 100 3",  # no item
        b"2 100 3    ",  # an item of spaces only is no item
        b"3 100 3 X",  # type is 1 or 2
        b"0 100 3 X",
        b"02x 100 3 X",
        b"+1 100 3 X",
        b"2 0 3 X",  # min_price at least 1
        b"2 -5 3 X",
        b"2 1_0 3 X",
        "2 ١٠٠ 3 X".encode(),
        "2 １００ 3 X".encode(),
        b"2 1234567890123 3 X",  # 13 digits
        b"2 100 0 X",  # buyers 1..max_buyers
        b"2 100 11 X",
        b"2 100 -3 X",
        b"2\t100 3 X",  # a tab is not a separator
        b"2 100 3 X\tY",  # nor printable
        b"2 100 3 X\x00",
        b"2 100 3 X\x7f",
        b"2 100 3 X\x1b[31m",
        b"2 100 3 " + b"x" * (MAX_ITEM + 1),
        b"2 100 3 \xff\xfe",  # invalid UTF-8
        b"\xc3 100 3 X",
        b"2 100 3 \xed\xa0\x80",  # an encoded surrogate is not UTF-8
    ],
)
def test_request_invalid(line: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_request(line, max_buyers=10)


def test_request_buyers_bound_is_the_servers() -> None:
    assert parse_request(b"1 5 1000 X", max_buyers=1000).buyers == 1000
    with pytest.raises(InvalidInput):
        parse_request(b"1 5 1001 X", max_buyers=1000)


# --- bids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [(b"120", 120), (b"  120  ", 120), (b"0001", 1), (b"999999999999", 999_999_999_999)],
)
def test_bid_valid(line: bytes, value: int) -> None:
    assert parse_bid(line) == value


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"   ",
        b"0",
        b"-5",
        b"+5",
        b"1 0",
        b"1_0",
        b"12.5",
        b"some wrong bid",
        "١٢٣".encode(),
        "１２３".encode(),
        b"1234567890123",
        b"\xff",
        b"\t5",
    ],
)
def test_bid_invalid(line: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_bid(line)


# --- server messages ----------------------------------------------------------------


def test_encode() -> None:
    assert encode("REQUEST") == b"REQUEST\n"
    assert encode("ROLE", "BUYER", 3) == b"ROLE BUYER 3\n"
    assert encode("SOLD", 150, "Wolf Pack Sword") == b"SOLD 150 Wolf Pack Sword\n"
    assert encode("WON", 5, "Épée") == "WON 5 Épée\n".encode()


#: Every builder of a server line, called, and the line it must build.
BUILT = [
    (protocol.role_seller(), b"ROLE SELLER"),
    (protocol.request(), b"REQUEST"),
    (protocol.invalid_request(), b"INVALID request"),
    (protocol.start(), b"START"),
    (protocol.role_buyer(7), b"ROLE BUYER 7"),
    (protocol.waiting(2, 3), b"WAITING 2 3"),
    (protocol.bid(), b"BID"),
    (protocol.invalid_bid(), b"INVALID bid"),
    (protocol.accepted(), b"ACCEPTED"),
    (protocol.notyet(), b"NOTYET"),
    (protocol.done(), b"DONE"),
    (protocol.sold(150, "Wolf Pack Sword"), b"SOLD 150 Wolf Pack Sword"),
    (protocol.unsold(99, "Map"), b"UNSOLD 99 Map"),
    (protocol.won(5, "Épée"), "WON 5 Épée".encode()),
    (protocol.lost("Map"), b"LOST Map"),
    (protocol.busy(), b"BUSY"),
    (protocol.timeout(), b"TIMEOUT"),
    (protocol.cancelled(CancelReason.SELLER_LEFT), b"CANCELLED seller-left"),
    (protocol.cancelled(CancelReason.SHUTDOWN), b"CANCELLED shutdown"),
    (protocol.SERVER_ERROR_LINE, b"CANCELLED server-error"),
    (protocol.line_too_long(), b"ERROR line-too-long"),
]


@pytest.mark.parametrize(("built", "line"), BUILT)
def test_builders_make_grammatical_lines(built: bytes, line: bytes) -> None:
    assert built == line + b"\n"
    parse_server_line(line)  # raises ProtocolError for anything outside the grammar


def test_every_keyword_has_a_builder() -> None:
    keywords = {parse_server_line(line).keyword for _, line in BUILT}
    assert keywords == set(SERVER_GRAMMAR)


#: One well-formed line for every keyword of the grammar, and what it parses to.
SAMPLES: dict[str, tuple[bytes, ServerMessage]] = {
    "ROLE SELLER": (b"ROLE SELLER", ServerMessage("ROLE SELLER")),
    "ROLE BUYER": (b"ROLE BUYER 3", ServerMessage("ROLE BUYER", (3,))),
    "REQUEST": (b"REQUEST", ServerMessage("REQUEST")),
    "INVALID": (b"INVALID request", ServerMessage("INVALID", word="request")),
    "START": (b"START", ServerMessage("START")),
    "WAITING": (b"WAITING 1 3", ServerMessage("WAITING", (1, 3))),
    "BID": (b"BID", ServerMessage("BID")),
    "ACCEPTED": (b"ACCEPTED", ServerMessage("ACCEPTED")),
    "NOTYET": (b"NOTYET", ServerMessage("NOTYET")),
    "DONE": (b"DONE", ServerMessage("DONE")),
    "SOLD": (b"SOLD 150 Wolf Pack Sword", ServerMessage("SOLD", (150,), item="Wolf Pack Sword")),
    "UNSOLD": (b"UNSOLD 0 WolfPackSword", ServerMessage("UNSOLD", (0,), item="WolfPackSword")),
    "WON": (b"WON 150 WolfPackSword", ServerMessage("WON", (150,), item="WolfPackSword")),
    "LOST": (b"LOST Wolf Pack", ServerMessage("LOST", item="Wolf Pack")),
    "BUSY": (b"BUSY", ServerMessage("BUSY")),
    "TIMEOUT": (b"TIMEOUT", ServerMessage("TIMEOUT")),
    "CANCELLED": (b"CANCELLED seller-left", ServerMessage("CANCELLED", word="seller-left")),
    "ERROR": (b"ERROR line-too-long", ServerMessage("ERROR", word="line-too-long")),
}


def test_samples_cover_the_grammar() -> None:
    assert set(SAMPLES) == set(SERVER_GRAMMAR)


@pytest.mark.parametrize("keyword", sorted(SERVER_GRAMMAR))
def test_parse_server_line(keyword: str) -> None:
    line, want = SAMPLES[keyword]
    got = parse_server_line(line)
    assert got == want
    assert got.final == (keyword in FINAL)


@pytest.mark.parametrize("keyword", sorted(SERVER_GRAMMAR))
def test_encode_then_parse_round_trips(keyword: str) -> None:
    """What the server builds with encode(), a client reads back unchanged."""
    line, want = SAMPLES[keyword]
    words = line.decode().split(" ")
    head = 2 if keyword.startswith("ROLE") else 1
    rebuilt = encode(" ".join(words[:head]), *words[head:])
    assert rebuilt == line + b"\n"
    assert parse_server_line(rebuilt[:-1]) == want


def test_final_keywords() -> None:
    assert FINAL == {"SOLD", "UNSOLD", "WON", "LOST", "BUSY", "TIMEOUT", "CANCELLED", "ERROR"}


def test_every_cancel_reason_parses() -> None:
    for reason in ("seller-left", "shutdown", "server-error"):
        assert parse_server_line(f"CANCELLED {reason}".encode()).word == reason


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"HELLO",  # unknown keyword
        b"bid",  # keywords are upper case
        b"ROLE",
        b"ROLE ",
        b"ROLE KING",
        b"ROLE BUYER",  # missing number
        b"ROLE BUYER x",
        b"ROLE BUYER 1 2",  # extra argument
        b"ROLE SELLER now",
        b"REQUEST please",
        b"BUSY 1",
        b"INVALID",  # missing word
        b"INVALID 12",
        b"INVALID req uest",
        b"INVALID r\xc3\xa9quest",
        b"WAITING 1",
        b"WAITING 1 3 5",
        b"WAITING +1 3",
        b"WAITING 1  3",
        b"WAITING 1 1234567890123",
        "WAITING ١ 3".encode(),
        b"SOLD 150",  # missing item
        b"SOLD 150 ",
        b"SOLD -150 X",
        b"SOLD X",
        b"UNSOLD",
        b"WON 1_0 X",
        b"WON 150 X\tY",
        b"LOST",
        b"LOST " + b"x" * (MAX_ITEM + 1),
        b"CANCELLED",
        b"CANCELLED -",
        b"CANCELLED seller left",
        b"ERROR",
        b"ERROR line-too-long extra",
        b"SOLD 150 \xff",  # not UTF-8
    ],
)
def test_parse_server_line_rejects(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_server_line(line)


def test_protocol_error_and_invalid_input_are_value_errors() -> None:
    # Callers that only care about "bad text" may catch ValueError.
    assert issubclass(ProtocolError, ValueError)
    assert issubclass(InvalidInput, ValueError)
    assert protocol.MAX_LINE == 1024
