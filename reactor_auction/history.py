"""``auc_server history``: list past auctions from the ledger.

An aligned table for people (times in local time), or ``--json``: one JSON
object per line with every field (times as ISO-8601 UTC) for programs.
Reads through ``ledger.history`` only; opens the file read-only.

Exit status: 0 listed (possibly nothing), 2 usage error, 3 no usable ledger.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .cli import non_negative_int
from .console import discard_stdout
from .exits import ServerExit
from .ledger import DEFAULT_PATH, LedgerError, PastAuction, history
from .protocol import Pricing

#: Column headings, and which columns are right-aligned (numbers).
COLUMNS = ("when", "item", "type", "outcome", "winner", "price", "bids")
_RIGHT = frozenset({"price", "bids"})
_PRICING_NAMES = {Pricing.FIRST.value: "first", Pricing.SECOND.value: "second"}
NOTHING_YET = "No auctions recorded yet."


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``auc_server history``."""
    parser = argparse.ArgumentParser(
        prog="auc_server history",
        description="List past auctions from the server's ledger, newest first.",
        epilog="Exit status: 0 listed; 2 usage error; 3 no usable ledger at PATH.",
    )
    parser.add_argument(
        "--ledger", default=DEFAULT_PATH, metavar="PATH",
        help=f"the ledger file to read (default: ./{DEFAULT_PATH})",
    )
    parser.add_argument(
        "--limit", type=non_negative_int, default=20, metavar="N",
        help="show the newest N auctions (default: 20; 0: all)",
    )
    parser.add_argument(
        "--json", action="store_true",
        help="one JSON object per line, every field, times in ISO-8601 UTC",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the history; return the exit status (argparse exits 2 itself)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        rows = history(args.ledger, args.limit or None)
    except LedgerError as exc:
        print(f"auc_server history: {exc}", file=sys.stderr)
        return ServerExit.LEDGER
    lines = [to_json(row) for row in rows] if args.json else table(rows)
    return _print(lines, sys.stdout)


def _print(lines: list[str], out: TextIO) -> int:
    """Write ``lines``; return ServerExit.OK, also when the reader went away
    (``auc_server history | head`` is not an error)."""
    try:
        for line in lines:
            out.write(line + "\n")
        out.flush()
    except BrokenPipeError:
        discard_stdout()  # Python would complain again flushing it at exit
    return ServerExit.OK


def local_time(when: float) -> str:
    """Return a Unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def utc_iso(when: float) -> str:
    """Return a Unix time as ISO-8601 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def cells(row: PastAuction) -> tuple[str, ...]:
    """Return one auction as the table's cells, in COLUMNS order."""
    outcome = f"{row.outcome} ({row.reason})" if row.reason else row.outcome
    return (
        local_time(row.ended_at),
        row.item,
        _PRICING_NAMES.get(row.pricing, str(row.pricing)),
        outcome,
        "-" if row.winner is None else f"Buyer {row.winner}",
        f"${row.price}" if row.outcome == "sold" else "-",
        str(row.bids),
    )


def table(rows: Sequence[PastAuction]) -> list[str]:
    """Return the aligned table: a heading line, then one line per auction
    (or NOTHING_YET when there is none)."""
    grid = [COLUMNS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = []
    for line in grid:
        padded = (
            cell.rjust(width) if name in _RIGHT else cell.ljust(width)
            for name, cell, width in zip(COLUMNS, line, widths, strict=True)
        )
        lines.append("  ".join(padded).rstrip())
    if not rows:
        lines.append(NOTHING_YET)
    return lines


def to_json(row: PastAuction) -> str:
    """Return one auction as a single line of JSON with every field."""
    return json.dumps(
        {
            "id": row.id,
            "item": row.item,
            "type": row.pricing,
            "min_price": row.min_price,
            "buyers_requested": row.buyers_requested,
            "buyers_connected": row.buyers_connected,
            "outcome": row.outcome,
            "reason": row.reason,
            "winner": row.winner,
            "winner_address": row.winner_address,
            "seller_address": row.seller_address,
            "highest": row.highest,
            "price": row.price,
            "started_at": utc_iso(row.started_at),
            "ended_at": utc_iso(row.ended_at),
            "bids": row.bids,
        },
        ensure_ascii=False,
    )
