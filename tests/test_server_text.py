"""The server's console wording (text.py, the server section): every log kind
is worded, the --verbose and --quiet sets hold log kinds, and enum arguments
show their wire value."""

from __future__ import annotations

from reactor_auction import text
from reactor_auction.events import LogKind, State
from reactor_auction.protocol import CancelReason, Pricing


def test_every_log_kind_has_wording_and_nothing_else_does() -> None:
    assert set(text.SERVER_TEXT) == set(LogKind)
    assert all(isinstance(key, LogKind) for key in text.SERVER_TEXT)


def test_verbose_and_error_sets_hold_log_kinds() -> None:
    for group in (text.VERBOSE, text.ERRORS):
        assert group and all(isinstance(kind, LogKind) for kind in group)
    assert not text.VERBOSE & text.ERRORS  # an error shows even with --quiet


def test_enum_arguments_show_their_wire_value() -> None:
    assert text.server_line(LogKind.STATE, (State.BIDDING,)) == ">> Auction state: bidding"
    assert text.server_line(LogKind.CANCELLED, (CancelReason.SELLER_LEFT,)) == (
        ">> Auction cancelled: seller-left"
    )
    assert text.server_line(LogKind.BUSY, ("10.0.0.9:5009", State.FINISHING)) == (
        "Server is busy (finishing): turned away 10.0.0.9:5009"
    )
    accepted = (Pricing.SECOND, 100, 3, "WolfPackSword")
    assert text.server_line(LogKind.REQUEST_ACCEPTED, accepted) == (
        "Auction request received. Now waiting for Buyers."
    )


def test_a_blank_line_follows_the_waiting_states_as_in_the_transcript() -> None:
    assert text.server_line(LogKind.STATE, (State.WAITING_BUYERS,)).endswith("buyers\n")
    assert text.server_line(LogKind.STATE, (State.WAITING_SELLER,)).endswith("seller\n")
    assert text.server_line(LogKind.STATE, (State.FINISHING,)).endswith("finishing")
