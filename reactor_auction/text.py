"""Human wording: every sentence a person sees, in one place.

The server's console lines (TRANSCRIPTS.md, "Server") are rendered here from
the auction's ``Log`` actions; the client's wording lives in ``client_text``
below. Nothing here does I/O.
"""

from __future__ import annotations

# --- the server console ----------------------------------------------------------

#: Log kind -> template; ``{0}``, ``{1}``... are the Log's args.
SERVER_TEXT: dict[str, str] = {
    "ready": "Auctioneer is ready for hosting auctions!\n",
    "seller_connected": "Seller is connected from {0}",
    "request_accepted": "Auction request received. Now waiting for Buyers.",
    "state": ">> Auction state: {0}",
    "buyer_connected": "Buyer {0} is connected from {1}",
    "bidding_starts": "Requested number of bidders arrived. Let's start bidding!",
    "bid": ">> Buyer {0} bid ${1}",
    "sold": ">> Item sold! The highest bid is ${0}. The actual payment is ${1}",
    "unsold": ">> Item not sold! The highest bid ${0} is below the minimum price ${1}.",
    "busy": "Server is busy ({1}): turned away {0}",
    "seller_left_early": "Seller from {0} left before sending an auction request.",
    "seller_timeout": "Seller from {0} sent no valid request in time. Waiting for the next Seller.",
    "seller_left_waiting": "Seller left while waiting for Buyers.",
    "buyer_left_waiting": "Buyer {0} left. The place is free again.",
    "left": ">> {0} left the auction.",
    "abstains": ">> Buyer {0} can no longer bid (its input is closed).",
    "bid_deadline": ">> Bidding time is up; {0} Buyer(s) did not bid.",
    "cancelled": ">> Auction cancelled: {0}",
    "line_too_long": "Connection from {0} sent an over-long line and was disconnected.",
    "invalid_request": "Invalid auction request from {0}: {1}",
    "invalid_bid": "Buyer {0} sent an invalid bid.",
    "recorded": ">> Auction #{0} recorded in {1}",
    "ledger_waiting": "Ledger is busy ({0}); the result waits and is retried.",
    "ledger_failed": "error: cannot record the auction: {0}",
    "shutdown": "Shutting down: telling everyone the auction is cancelled.",
    "fd_limit": "warning: --max-buyers {0} is more than the descriptor limit allows; using {1}.",
    "fd_exhausted": "warning: out of file descriptors ({0}); pausing new connections.",
    "connection_error": "error: connection {0} closed after an internal error: {1}",
    "fatal": "error: internal error in the auction ({0}); every client was told CANCELLED.",
    "opened": "[conn {0}] opened from {1}",
    "closed": "[conn {0}] closed ({1})",
}

#: Shown only with --verbose.
VERBOSE = frozenset({"invalid_request", "invalid_bid", "opened", "closed"})
#: Shown even with --quiet (on standard error).
ERRORS = frozenset({"ledger_failed", "fd_limit", "fd_exhausted", "connection_error", "fatal"})
#: Followed by a blank line, as in the transcript.
_BLANK_AFTER_STATES = frozenset({"waiting-buyers", "waiting-seller"})


def server_line(kind: str, args: tuple[object, ...]) -> str:
    """Return the console text for one log event (it may span lines)."""
    text = SERVER_TEXT[kind].format(*args)
    if kind == "state" and args and args[0] in _BLANK_AFTER_STATES:
        text += "\n"
    return text
