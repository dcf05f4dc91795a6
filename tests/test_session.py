"""The client's session without sockets: server lines and user lines in,
notices, lines to send and exit statuses out; the notices as text.py words
them are docs/TRANSCRIPTS.md, line for line."""

from __future__ import annotations

import pytest
from session_tools import Driver

from reactor_auction import text
from reactor_auction.protocol import SERVER_GRAMMAR
from reactor_auction.session import (
    TRANSITIONS,
    ExitStatus,
    Notice,
    NoticeKind,
    Output,
    Phase,
    Session,
)

CONNECTED = ["Connected to the Auctioneer server.", ""]
OVER = "Disconnecting from the Auctioneer server. Auction is over!"


# --- the transcripts ---------------------------------------------------------------


def test_seller_sold_transcript() -> None:
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    assert d.session.should_read_input and d.last.status is None
    d.user("some wrong input")
    d.server("INVALID request", "REQUEST")
    d.user("2 100 3 WolfPackSword")
    out = d.server("START", "SOLD 150 WolfPackSword")
    assert d.sent == [b"some wrong input\n", b"2 100 3 WolfPackSword\n"]
    assert d.shown == CONNECTED + [
        "Your role is: [Seller]",
        "Please submit auction request:",
        "Server: Invalid auction request!",
        "Please submit auction request:",
        "Server: Auction start.",
        "",
        "Auction finished!",
        "Success! Your item WolfPackSword has been sold for $150.",
        OVER,
    ]
    assert out.status is ExitStatus.OK and not out.close_with_reset
    assert d.notices[-2] == Notice(NoticeKind.SOLD, item="WolfPackSword", price=150)


def test_seller_not_sold() -> None:
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    d.user("1 100 2 Old Lamp")
    start = len(d.shown)
    out = d.server("START", "UNSOLD 60 Old Lamp")
    assert d.text_since(start) == [
        "Server: Auction start.",
        "",
        "Auction finished!",
        "Unfortunately, your item was not sold as all bids were below the minimum price.",
        OVER,
    ]
    assert out.status is ExitStatus.OK


def _buyer_until_result(d: Driver) -> None:
    d.server("ROLE BUYER 1", "WAITING 1 3", "BID")
    d.user("some wrong bid")
    d.server("INVALID bid", "BID")
    d.user("120")
    d.server("ACCEPTED")


BUYER_HEAD = CONNECTED + [
    "Your role is: [Buyer]",
    "The Auctioneer is still waiting for other Buyers to connect...",
    "",
    "The bidding has started!",
    "Please submit your bid:",
    "Server: Invalid bid. Please submit a positive integer!",
    "Please submit your bid:",
    "Server: Bid received. Please wait...",
    "",
    "Server: Auction finished!",
]


@pytest.mark.parametrize(
    ("final", "sentence"),
    [
        ("LOST WolfPackSword", "Unfortunately you did not win in the last round."),
        ("WON 150 WolfPackSword", "You won the item 'WolfPackSword'! Your payment due is $150"),
        (
            "UNSOLD 120 WolfPackSword",
            "Unfortunately, the item was not sold as all bids were below the minimum price.",
        ),
    ],
)
def test_buyer_transcripts(final: str, sentence: str) -> None:
    d = Driver()
    _buyer_until_result(d)
    out = d.server(final)
    assert d.shown == BUYER_HEAD + [sentence, OVER]
    assert d.sent == [b"some wrong bid\n", b"120\n"]
    assert out.status is ExitStatus.OK and not out.close_with_reset


def test_the_buyer_completing_the_count_is_not_told_to_wait() -> None:
    d = Driver()
    d.server("ROLE BUYER 3", "BID")
    assert d.shown == CONNECTED + [
        "Your role is: [Buyer]",
        "",
        "The bidding has started!",
        "Please submit your bid:",
    ]
    assert d.session.buyer_number == 3


def test_typed_too_early() -> None:
    d = Driver()
    d.server("ROLE BUYER 1", "WAITING 1 2")
    d.user("100")  # interactive: sent at once, the server answers NOTYET
    assert d.sent == [b"100\n"]
    start = len(d.shown)
    d.server("NOTYET", "BID")
    assert d.text_since(start) == [
        "Server: Bidding has not started yet. Please wait.",
        "",
        "The bidding has started!",
        "Please submit your bid:",
    ]


def test_busy_transcript() -> None:
    d = Driver()
    out = d.server("BUSY")
    assert d.shown == CONNECTED + ["Server is busy. Try to connect again later."]
    assert out.status is ExitStatus.BUSY and not out.close_with_reset


@pytest.mark.parametrize(
    ("phase_lines", "kind", "what"),
    [
        (["ROLE SELLER", "REQUEST"], "seller", "auction request"),
        (["ROLE BUYER 1", "WAITING 1 2", "BID", "ACCEPTED"], "buyer", "bid"),
    ],
)
def test_done_is_shown_and_changes_nothing(phase_lines: list[str], kind: str, what: str) -> None:
    d = Driver()
    d.server(*phase_lines)
    if kind == "seller":
        d.user("1 1 1 X")
        d.server("START")
    start = len(d.shown)
    out = d.server("DONE")
    assert out.notices == (
        Notice(NoticeKind.DONE_SELLER if kind == "seller" else NoticeKind.DONE_BUYER),
    )
    assert d.text_since(start) == [f"Server: Your {what} is already in. Please wait."]
    assert out.status is None


def test_done_while_bidding_means_bidding_closed() -> None:
    d = Driver()
    d.server("ROLE BUYER 1", "BID")
    start = len(d.shown)
    d.server("DONE")
    assert d.text_since(start) == ["Server: Bidding is closed. Please wait."]
    assert d.server("LOST X").status is ExitStatus.OK  # no bid still gets its result


# --- other endings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "sentence"),
    [
        ("seller-left", "Server: Auction cancelled: the Seller left."),
        ("shutdown", "Server: Auction cancelled: the Auctioneer is shutting down."),
        ("server-error", "Server: Auction cancelled: the Auctioneer had an internal error."),
        ("whatever", "Server: Auction cancelled (whatever)."),
    ],
)
def test_cancelled(reason: str, sentence: str) -> None:
    d = Driver()
    d.server("ROLE BUYER 1", "WAITING 1 2")
    start = len(d.shown)
    out = d.server(f"CANCELLED {reason}")
    assert d.text_since(start) == ["", sentence, "Disconnecting from the Auctioneer server."]
    assert out.status is ExitStatus.CANCELLED and not out.close_with_reset
    assert out.notices == (
        Notice(NoticeKind.CANCELLED, word=reason),
        Notice(NoticeKind.DISCONNECTING),
    )


def test_cancelled_before_a_role_or_after_start() -> None:
    assert Driver().server("CANCELLED shutdown").status is ExitStatus.CANCELLED
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    d.user("1 1 1 X")
    assert d.server("START", "CANCELLED shutdown").status is ExitStatus.CANCELLED


def test_timeout() -> None:
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    start = len(d.shown)
    out = d.server("TIMEOUT")
    assert d.text_since(start) == [
        "",
        "Server: Time is up: no valid auction request arrived in time.",
        "Disconnecting from the Auctioneer server.",
    ]
    assert out.status is ExitStatus.TIMED_OUT


def test_server_error_line_too_long() -> None:
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    out = d.server("ERROR line-too-long")
    assert d.shown[-2:] == [
        "Server: Your line was too long.",
        "Disconnecting from the Auctioneer server.",
    ]
    assert out.status is ExitStatus.PROTOCOL_ERROR and not out.close_with_reset
    other = Driver()
    other.server("ERROR odd-thing")
    assert other.shown[-2] == "Server: Protocol error (odd-thing)."


def test_connection_lost_before_a_result() -> None:
    d = Driver()
    d.server("ROLE BUYER 1", "BID")
    out = d.closed()
    assert d.shown[-1] == (
        "The connection to the Auctioneer server was lost before the auction was over."
    )
    assert out.status is ExitStatus.LOST


def test_nothing_changes_after_the_end() -> None:
    d = Driver()
    d.server("ROLE BUYER 1", "BID", "LOST X")
    for out in (
        d.session.connection_closed(),
        d.session.server_line(b"BID"),
        d.session.user_line(b"5"),
        d.session.input_ended(),
        d.session.interrupted(),
    ):
        assert out == Output(status=ExitStatus.OK)
    assert d.session.phase is Phase.OVER


@pytest.mark.parametrize(
    "lines",
    [
        [b"HELLO there"],  # unknown keyword
        [b"ROLE KING"],
        [b"ROLE SELLER", b"REQUEST", b"INVALID bid"],  # a buyer's word to a seller
        [b"ROLE SELLER", b"BID"],  # a buyer's message to a seller
        [b"ROLE BUYER 1", b"SOLD 5 X"],  # a seller's result to a buyer
        [b"ROLE BUYER one"],  # malformed number
        [b"ROLE BUYER 1", b"BID", b"WON 1_0 X"],  # not a protocol number
        [b"ROLE BUYER 1", b"BID", b"ACCEPTED", b"ACCEPTED"],  # twice
        [b"ROLE SELLER", b"ROLE SELLER"],
        [b"REQUEST"],  # before a role
        [b"ROLE SELLER", b"REQUEST", b"START now"],  # trailing junk
        [b"\xff\xfe"],  # not UTF-8
        [b""],
    ],
)
def test_protocol_errors_end_the_session(lines: list[bytes]) -> None:
    d = Driver()
    d.server(*lines)
    assert d.last.status is ExitStatus.PROTOCOL_ERROR
    assert d.last.close_with_reset  # the client goes, with a reset
    assert d.shown[-2].startswith("Protocol error: ")
    assert d.shown[-1] == "Disconnecting from the Auctioneer server."


def test_an_over_long_server_line_is_a_protocol_error() -> None:
    d = Driver()
    out = d.server_line_too_long()
    assert out.status is ExitStatus.PROTOCOL_ERROR
    assert d.shown[-2] == "Protocol error: the server sent an over-long line."


def test_interrupted() -> None:
    d = Driver()
    d.server("ROLE SELLER", "REQUEST")
    out = d.interrupted()
    # On a terminal, a line end first: the terminal echoed "^C" without one.
    assert d.shown[-2:] == ["", "Interrupted: leaving the Auctioneer server. Goodbye!"]
    assert out.status is ExitStatus.INTERRUPTED and out.close_with_reset
    scripted = Driver(interactive=False)  # no terminal, no echo: no extra line
    scripted.server("ROLE SELLER")
    scripted.interrupted()
    assert scripted.shown[-2:] == [
        "Your role is: [Seller]",
        "Interrupted: leaving the Auctioneer server. Goodbye!",
    ]


# --- input: interactive --------------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        [],  # no role yet
        ["ROLE SELLER", "REQUEST"],
        ["ROLE SELLER", "REQUEST", "INVALID request", "REQUEST"],
        ["ROLE BUYER 1", "WAITING 1 2"],
        ["ROLE BUYER 2", "BID"],
        ["ROLE BUYER 2", "BID", "INVALID bid", "BID"],
    ],
)
def test_ctrl_d_leaves_while_input_is_needed(lines: list[str]) -> None:
    d = Driver()
    d.server(*lines)
    out = d.eof()
    assert out.status is ExitStatus.END_OF_INPUT and out.close_with_reset
    assert d.shown[-1] == "End of input: leaving the auction before it is over."


@pytest.mark.parametrize(
    ("lines", "final"),
    [
        (["ROLE SELLER", "REQUEST", "START"], "SOLD 5 X"),
        (["ROLE BUYER 1", "BID", "ACCEPTED"], "WON 5 X"),
    ],
)
def test_ctrl_d_is_ignored_once_nothing_more_is_needed(lines: list[str], final: str) -> None:
    d = Driver()
    d.server(*lines)
    out = d.eof()
    assert out.status is None and not out.notices
    assert d.server(final).status is ExitStatus.OK


def test_interactive_lines_go_out_as_typed() -> None:
    d = Driver()
    d.user("hello")  # before any role: sent anyway, the server decides
    d.server("ROLE SELLER", "REQUEST")
    d.user("  2 100 3 X  ")  # no local validation, no trimming
    assert d.sent == [b"hello\n", b"  2 100 3 X  \n"]


def test_interactive_lines_before_connecting_go_out_on_connect() -> None:
    session = Session(interactive=True)
    assert session.user_line(b"early").send == ()
    assert session.connected().send == (b"early\n",)


# --- input: scripted -----------------------------------------------------------------


def test_scripted_lines_answer_prompts_in_order() -> None:
    d = Driver(interactive=False)
    d.user("bad request")  # read ahead (several lines in one read): kept
    d.user("2 100 3 Sword")
    assert d.sent == []
    d.server("ROLE SELLER", "REQUEST")
    assert d.sent == [b"bad request\n"] and not d.session.should_read_input
    d.server("INVALID request", "REQUEST")
    assert d.sent == [b"bad request\n", b"2 100 3 Sword\n"]
    assert not d.session.should_read_input


def test_scripted_prompt_waits_for_input() -> None:
    d = Driver(interactive=False)
    d.server("ROLE BUYER 1", "WAITING 1 2")
    assert not d.session.should_read_input  # nothing is read before a prompt
    d.server("BID")
    assert d.session.should_read_input
    out = d.user("120")
    assert out.send == (b"120\n",) and not d.session.should_read_input
    d.user("more")  # no prompt pending: kept, not sent
    assert d.sent == [b"120\n"]
    d.server("INVALID bid", "BID")  # the prompt is back: the kept line answers it
    assert d.sent == [b"120\n", b"more\n"] and not d.session.should_read_input


def test_interactive_sessions_read_until_over() -> None:
    d = Driver()
    assert d.session.should_read_input  # before any prompt: typing early is allowed
    d.server("ROLE BUYER 1", "BID")
    d.user("5")
    d.server("ACCEPTED")
    assert d.session.should_read_input
    d.server("LOST X")
    assert not d.session.should_read_input


def test_scripted_input_ending_at_a_prompt() -> None:
    d = Driver(interactive=False)
    d.server("ROLE SELLER", "REQUEST")
    out = d.eof()
    assert out.status is ExitStatus.END_OF_INPUT and out.close_with_reset


def test_scripted_input_ending_before_a_prompt_is_noticed_at_the_prompt() -> None:
    d = Driver(interactive=False)
    d.server("ROLE BUYER 1", "WAITING 1 2")
    assert d.eof().status is None  # not needed yet
    out = d.server("BID")
    assert out.status is ExitStatus.END_OF_INPUT and out.close_with_reset
    assert d.shown[-2:] == [
        "Please submit your bid:",
        "End of input: leaving the auction before it is over.",
    ]


def test_scripted_kept_lines_outlive_the_end_of_input() -> None:
    d = Driver(interactive=False)
    d.user("5")
    d.eof()
    d.server("ROLE BUYER 1", "BID")
    assert d.sent == [b"5\n"] and d.last.status is None
    assert d.server("INVALID bid", "BID").status is ExitStatus.END_OF_INPUT


def test_successor_keeps_unsent_input() -> None:
    d = Driver(interactive=False)
    d.user("1 1 1 X")
    d.server("BUSY")
    nxt = d.session.successor()
    assert nxt.phase is Phase.UNCONNECTED and nxt.status is None
    nxt.connected()
    assert nxt.server_line(b"ROLE SELLER").send == ()
    assert nxt.server_line(b"REQUEST").send == (b"1 1 1 X\n",)


# --- the tables ----------------------------------------------------------------------


def test_every_handler_exists_and_every_server_keyword_is_handled() -> None:
    for handler in TRANSITIONS.values():
        assert getattr(Session, handler.__name__) is handler
    handled = {keyword for _, keyword in TRANSITIONS}
    assert handled == set(SERVER_GRAMMAR)


def test_every_notice_kind_has_wording() -> None:
    assert set(text.CLIENT_TEXT) == set(NoticeKind)
    for kind in NoticeKind:
        notice = Notice(kind, item="Cup", price=5, word="odd", phase=Phase.SELLER, detail="why")
        assert isinstance(text.notice_text(notice), str)  # every placeholder has a value


@pytest.mark.parametrize(
    ("lines", "notice", "sentence"),
    [
        (
            ["ROLE SELLER", "BID"],
            Notice(NoticeKind.UNEXPECTED_MESSAGE, word="BID", phase=Phase.SELLER),
            "Protocol error: unexpected 'BID' from the server (seller).",
        ),
        (
            ["ROLE SELLER", "REQUEST", "INVALID bid"],
            Notice(NoticeKind.UNEXPECTED_INVALID, word="bid"),
            "Protocol error: unexpected 'INVALID bid' from the server.",
        ),
        (
            ["HELLO there"],
            Notice(NoticeKind.UNREADABLE_LINE, detail="unknown server message: 'HELLO there'"),
            "Protocol error: unknown server message: 'HELLO there'.",
        ),
    ],
)
def test_protocol_error_notices_carry_what_went_wrong(
    lines: list[str], notice: Notice, sentence: str
) -> None:
    d = Driver()
    out = d.server(*lines)
    assert out.notices == (notice, Notice(NoticeKind.DISCONNECTING))
    assert d.shown[-2:] == [sentence, "Disconnecting from the Auctioneer server."]
