"""Human wording: what a person sees while an auction runs, in one place.

The server's console lines (TRANSCRIPTS.md, "Server") are rendered here from
the auction's ``Log`` actions; the client's wording lives in ``client_text``
below. Nothing here does I/O. Command-line matters stay with their command:
option help, usage and start-up errors in server.py and client.py, the
history table's headings in history.py.
"""

from __future__ import annotations

import enum

from .events import LogKind, State

# --- the server console ----------------------------------------------------------

#: Log kind -> template; ``{0}``, ``{1}``... are the Log's args (an Enum
#: member shows its value: a state, a pricing rule, a cancel reason).
SERVER_TEXT: dict[LogKind, str] = {
    LogKind.READY: "Auctioneer is ready for hosting auctions!\n",
    LogKind.SELLER_CONNECTED: "Seller is connected from {0}",
    LogKind.REQUEST_ACCEPTED: "Auction request received. Now waiting for Buyers.",
    LogKind.STATE: ">> Auction state: {0}",
    LogKind.BUYER_CONNECTED: "Buyer {0} is connected from {1}",
    LogKind.BIDDING_STARTS: "Requested number of bidders arrived. Let's start bidding!",
    LogKind.BID: ">> Buyer {0} bid ${1}",
    LogKind.SOLD: ">> Item sold! The highest bid is ${0}. The actual payment is ${1}",
    LogKind.UNSOLD: ">> Item not sold! The highest bid ${0} is below the minimum price ${1}.",
    LogKind.BUSY: "Server is busy ({1}): turned away {0}",
    LogKind.SELLER_LEFT_EARLY: "Seller from {0} left before sending an auction request.",
    LogKind.SELLER_TIMEOUT: "Seller from {0} sent no valid request in time. "
    "Waiting for the next Seller.",
    LogKind.SELLER_LEFT_WAITING: "Seller left while waiting for Buyers.",
    LogKind.BUYER_LEFT_WAITING: "Buyer {0} left. The place is free again.",
    LogKind.SELLER_LEFT: ">> Seller left the auction.",
    LogKind.BUYER_LEFT: ">> Buyer {0} left the auction.",
    LogKind.ABSTAINS: ">> Buyer {0} can no longer bid (its input is closed).",
    LogKind.BID_DEADLINE: ">> Bidding time is up; {0} Buyer(s) did not bid.",
    LogKind.CANCELLED: ">> Auction cancelled: {0}",
    LogKind.LINE_TOO_LONG: "Connection from {0} sent an over-long line and was disconnected.",
    LogKind.INVALID_REQUEST: "Invalid auction request from {0}: {1}",
    LogKind.INVALID_BID: "Buyer {0} sent an invalid bid.",
    LogKind.RECORDED: ">> Auction #{0} recorded in {1}",
    LogKind.LEDGER_WAITING: "Ledger is busy ({0}); the result waits and is retried.",
    LogKind.LEDGER_FAILED: "error: cannot record the auction: {0}",
    LogKind.LEDGER_GAVE_UP: "error: stopping without recording the cancelled auction "
    "(ledger unavailable).",
    LogKind.SHUTDOWN: "Shutting down: telling everyone the auction is cancelled.",
    LogKind.FD_LIMIT: "warning: --max-buyers {0} is more than the descriptor limit allows; "
    "using {1}.",
    LogKind.FD_EXHAUSTED: "warning: out of file descriptors ({0}); pausing new connections.",
    LogKind.CONNECTION_ERROR: "error: connection {0} closed after an internal error: {1}",
    LogKind.FATAL: "error: internal error in the auction ({0}); every client was told CANCELLED.",
    LogKind.LISTENING: "Listening on {0}:{1}",
    LogKind.OPENED: "[conn {0}] opened from {1}",
    LogKind.CLOSED: "[conn {0}] closed ({1})",
}

#: Shown only with --verbose.
VERBOSE = frozenset(
    {LogKind.LISTENING, LogKind.INVALID_REQUEST, LogKind.INVALID_BID, LogKind.OPENED,
     LogKind.CLOSED}
)
#: Shown even with --quiet (on standard error).
ERRORS = frozenset(
    {LogKind.LEDGER_FAILED, LogKind.LEDGER_GAVE_UP, LogKind.FD_LIMIT, LogKind.FD_EXHAUSTED,
     LogKind.CONNECTION_ERROR, LogKind.FATAL}
)
#: Followed by a blank line, as in the transcript.
_BLANK_AFTER_STATES = frozenset({State.WAITING_BUYERS, State.WAITING_SELLER})


def server_line(kind: LogKind, args: tuple[object, ...]) -> str:
    """Return the console text for one log event (it may span lines)."""
    text = SERVER_TEXT[kind].format(
        *(arg.value if isinstance(arg, enum.Enum) else arg for arg in args)
    )
    if kind is LogKind.STATE and args and args[0] in _BLANK_AFTER_STATES:
        text += "\n"
    return text


# --- the client ---------------------------------------------------------------------
#
# TRANSCRIPTS.md, "Seller", "Buyer" and "Busy", line for line. A "\n" inside a
# text is a blank line of the transcript. ``{item}`` and ``{price}`` are filled
# from the server's message.

CLIENT_TEXT: dict[str, str] = {
    "connected": "Connected to the Auctioneer server.\n",
    "busy": "Server is busy. Try to connect again later.",
    # the seller
    "role_seller": "Your role is: [Seller]",
    "request_prompt": "Please submit auction request:",
    "invalid_request": "Server: Invalid auction request!",
    "start": "Server: Auction start.",
    "seller_finished": "\nAuction finished!",
    "sold": "Success! Your item {item} has been sold for ${price}.",
    "seller_unsold": "Unfortunately, your item was not sold as all bids were below the "
    "minimum price.",
    # the buyer
    "role_buyer": "Your role is: [Buyer]",
    "waiting": "The Auctioneer is still waiting for other Buyers to connect...",
    "bidding_starts": "\nThe bidding has started!",
    "bid_prompt": "Please submit your bid:",
    "invalid_bid": "Server: Invalid bid. Please submit a positive integer!",
    "accepted": "Server: Bid received. Please wait...",
    "notyet": "Server: Bidding has not started yet. Please wait.",
    "buyer_finished": "\nServer: Auction finished!",
    "won": "You won the item '{item}'! Your payment due is ${price}",
    "lost": "Unfortunately you did not win in the last round.",
    "buyer_unsold": "Unfortunately, the item was not sold as all bids were below the "
    "minimum price.",
    # both, after a result
    "over": "Disconnecting from the Auctioneer server. Auction is over!",
    # --- beyond the seed transcripts: one or two sentences each, same voice ---
    "done_seller": "Server: Your auction request is already in. Please wait.",
    "done_buyer": "Server: Your bid is already in. Please wait.",
    "done_closed": "Server: Bidding is closed. Please wait.",
    "cancelled_seller-left": "\nServer: Auction cancelled: the Seller left.",
    "cancelled_shutdown": "\nServer: Auction cancelled: the Auctioneer is shutting down.",
    "cancelled_server-error": "\nServer: Auction cancelled: the Auctioneer had an internal error.",
    "cancelled": "\nServer: Auction cancelled ({reason}).",
    "timeout": "\nServer: Time is up: no valid auction request arrived in time.",
    "server_error_line-too-long": "Server: Your line was too long.",
    "server_error": "Server: Protocol error ({reason}).",
    "disconnecting": "Disconnecting from the Auctioneer server.",
    "connection_lost": "The connection to the Auctioneer server was lost before the auction "
    "was over.",
    "detail_over_long": "the server sent an over-long line",
    "detail_unexpected": "unexpected {keyword!r} from the server ({phase})",
    "detail_unexpected_invalid": "unexpected 'INVALID {word}' from the server",
    "protocol_error": "Protocol error: {detail}.\nDisconnecting from the Auctioneer server.",
    "end_of_input": "End of input: leaving the auction before it is over.",
    "interrupted": "Interrupted: leaving the Auctioneer server. Goodbye!",
    "retry": "Trying again in {delay:g} seconds (retry {attempt} of {retries})...",
    # cannot connect (standard error)
    "refused": "Could not connect to the Auctioneer server at {where}: connection refused. "
    "Is it running?",
    "unknown_host": "Could not connect to the Auctioneer server: unknown host {host!r}.",
    "connect_timeout": "Could not connect to the Auctioneer server at {where} within "
    "{seconds:g} seconds.",
    "connect_failed": "Could not connect to the Auctioneer server at {where}: {reason}.",
    "internal_error": "auc_client: internal error: {detail}",
}

#: Exit status name (session.ExitStatus) -> its meaning, for ``auc_client --help``.
CLIENT_EXIT_TEXT: dict[str, str] = {
    "OK": "the auction ran to its result (sold, not sold, won, lost)",
    "USAGE": "usage error",
    "CANNOT_CONNECT": "cannot connect (refused, unknown host, unreachable, timed out)",
    "BUSY": "the server is busy (after any --retry)",
    "CANCELLED": "the auction was cancelled (seller left, server shut down or failed)",
    "TIMED_OUT": "the server timed out waiting for the auction request",
    "LOST": "the connection was lost before the result",
    "PROTOCOL_ERROR": "the server sent something this client does not understand, or an ERROR",
    "END_OF_INPUT": "standard input ended while an answer was still needed",
    "INTERNAL": "internal error (a bug)",
    "INTERRUPTED": "interrupted by Ctrl-C",
}


def client_text(kind: str, **fields: object) -> str:
    """Return the client's text ``kind`` with ``fields`` filled in (it may span lines)."""
    return CLIENT_TEXT[kind].format(**fields)


def client_text_for(kind: str, word: str) -> str:
    """Return the text ``kind_word`` if there is one, else ``kind`` with
    ``reason=word`` (``CANCELLED``/``ERROR`` and their reason words)."""
    specific = f"{kind}_{word}"
    return client_text(specific if specific in CLIENT_TEXT else kind, reason=word)
