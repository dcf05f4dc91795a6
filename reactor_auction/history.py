"""``auc_server history``: list past auctions from the ledger.

For people: an aligned table, newest first, with times in local time and the
UTC offset in the heading; ``--bids ID`` lists one auction's bids, the
winner's marked. For programs: ``--json`` (one JSON object per line, every
field and the bids, times ISO-8601 UTC) or ``--csv`` (a heading row, then
one row per auction, or per bid with ``--bids``; times in UTC). Reads through
``ledger.history`` and ``ledger.auction`` only; opens the file read-only.

Exit status: 0 listed (possibly nothing), 1 no auction of that number,
2 usage error, 3 no usable ledger.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from .cli import non_negative_int, positive_int
from .console import discard_stdout
from .exits import ServerExit
from .ledger import DEFAULT_PATH, LedgerError, LedgerMissing, PastAuction, auction, history
from .protocol import Pricing

#: ``--bids ID`` names no auction in the ledger.
EXIT_NO_AUCTION = 1
#: Which table columns are right-aligned (numbers), by heading.
_RIGHT = frozenset({"id", "price", "bids", "#", "amount"})
_PRICING_NAMES = {Pricing.FIRST.value: "first", Pricing.SECOND.value: "second"}
NOTHING_YET = "No auctions recorded yet."
NO_BIDS = "No bids."
#: The mark beside the winning bid in ``--bids``.
WINNER = "winner"
#: The CSV columns of ``--csv`` (auctions) and ``--csv --bids`` (bids).
CSV_AUCTIONS = (
    "id", "ended_utc", "started_utc", "item", "type", "min_price", "buyers_requested",
    "buyers_connected", "outcome", "reason", "winner", "winner_address",
    "seller_address", "highest", "price", "bids",
)
CSV_BIDS = ("auction", "arrival", "at_utc", "buyer", "amount", "winner")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``auc_server history``."""
    parser = argparse.ArgumentParser(
        prog="auc_server history",
        description="List past auctions from the server's ledger, newest first.",
        epilog="Exit status: 0 listed; 1 no auction of that number; 2 usage error; "
        "3 no usable ledger at PATH.",
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
        "--bids", type=positive_int, metavar="ID",
        help="list the bids of auction ID (the id column), the winner's marked",
    )
    form = parser.add_mutually_exclusive_group()
    form.add_argument(
        "--json", action="store_true",
        help="one JSON object per line, every field and the bids, times in ISO-8601 UTC",
    )
    form.add_argument(
        "--csv", action="store_true",
        help="comma-separated values with a heading row, for spreadsheets; times in UTC",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the history; return the exit status (argparse exits 2 itself)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.bids is None:
            rows = history(args.ledger, args.limit or None)
        else:
            found = auction(args.ledger, args.bids)
            if found is None:
                print(
                    f"{parser.prog}: ledger {os.path.abspath(args.ledger)} has no auction"
                    f" #{args.bids} ({parser.prog} lists their ids)",
                    file=sys.stderr,
                )
                return EXIT_NO_AUCTION
            rows = [found]
    except LedgerMissing as exc:
        print(f"{parser.prog}: {exc}; --ledger PATH reads another file", file=sys.stderr)
        return ServerExit.LEDGER
    except LedgerError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return ServerExit.LEDGER
    if args.json:
        lines = [to_json(row) for row in rows]
    elif args.csv:
        lines = bids_csv(rows[0]) if args.bids is not None else auctions_csv(rows)
    else:
        lines = bids_table(rows[0]) if args.bids is not None else table(rows)
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


# --- times --------------------------------------------------------------------------


def utc_offset(seconds: int) -> str:
    """Return an offset from UTC as ``UTC+02:00``, ``UTC-03:30`` or ``UTC``."""
    if seconds == 0:
        return "UTC"
    sign = "+" if seconds > 0 else "-"
    minutes = abs(seconds) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def time_zone(times: Iterable[float]) -> str | None:
    """Return the UTC offset (as utc_offset words it) that local time has at
    every one of ``times`` (now, if there is none), or None if it differs
    among them (a change to or from summer time between two of them)."""
    offsets = {time.localtime(when).tm_gmtoff for when in times}
    if not offsets:
        offsets = {time.localtime().tm_gmtoff}
    return utc_offset(offsets.pop()) if len(offsets) == 1 else None


def time_heading(name: str, zone: str | None) -> str:
    """Return a time column's heading: which time, and its UTC offset when
    every row shares one (else each cell carries its own)."""
    return f"{name} (local, {zone})" if zone else f"{name} (local)"


def local_time(when: float, zone: str | None, *, millis: bool = False) -> str:
    """Return a Unix time as local ``YYYY-MM-DD HH:MM:SS`` (``.mmm`` with
    ``millis``), followed by its UTC offset when ``zone`` is None."""
    moment = datetime.datetime.fromtimestamp(when)  # local, without its offset
    text = moment.isoformat(" ", timespec="milliseconds" if millis else "seconds")
    return text if zone else f"{text} {utc_offset(int(time.localtime(when).tm_gmtoff))}"


def utc_iso(when: float) -> str:
    """Return a Unix time as ISO-8601 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def utc_plain(when: float) -> str:
    """Return a Unix time in UTC as ``YYYY-MM-DD HH:MM:SS.mmm``, which
    spreadsheets read as a date and time."""
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


# --- tables for people ----------------------------------------------------------------


def aligned(headings: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Return a heading line and one line per row, columns two spaces apart,
    numbers (the _RIGHT headings) right-aligned, trailing spaces removed."""
    grid = [tuple(headings), *(tuple(row) for row in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(headings))]
    lines = []
    for line in grid:
        padded = (
            cell.rjust(width) if name in _RIGHT else cell.ljust(width)
            for name, cell, width in zip(headings, line, widths, strict=True)
        )
        lines.append("  ".join(padded).rstrip())
    return lines


def columns(zone: str | None) -> tuple[str, ...]:
    """Return the auction table's headings."""
    return ("id", time_heading("ended", zone), "item", "type", "outcome", "winner", "price",
            "bids")


def cells(row: PastAuction, zone: str | None) -> tuple[str, ...]:
    """Return one auction as the table's cells, in columns() order."""
    outcome = f"{row.outcome} ({row.reason})" if row.reason else row.outcome
    return (
        str(row.id),
        local_time(row.ended_at, zone),
        row.item,
        _PRICING_NAMES.get(row.pricing, str(row.pricing)),
        outcome,
        "-" if row.winner is None else f"Buyer {row.winner}",
        f"${row.price}" if row.outcome == "sold" else "-",
        str(len(row.bids)),
    )


def table(rows: Sequence[PastAuction]) -> list[str]:
    """Return the aligned table: a heading line, then one line per auction
    (or NOTHING_YET when there is none)."""
    zone = time_zone(row.ended_at for row in rows)
    lines = aligned(columns(zone), (cells(row, zone) for row in rows))
    if not rows:
        lines.append(NOTHING_YET)
    return lines


def summary(row: PastAuction) -> str:
    """Return one line saying what auction ``row`` was and how it ended."""
    rule = _PRICING_NAMES.get(row.pricing, str(row.pricing))
    what = (
        f"Auction #{row.id}: {row.item} ({rule} price, min ${row.min_price},"
        f" {row.buyers_connected} of {row.buyers_requested} buyers)"
    )
    if row.outcome == "sold":
        return f"{what}: sold to Buyer {row.winner} for ${row.price}"
    if row.outcome == "unsold":
        return f"{what}: unsold, highest bid ${row.highest}" if row.bids else f"{what}: unsold"
    return f"{what}: {row.outcome}" + (f" ({row.reason})" if row.reason else "")


def bids_table(row: PastAuction) -> list[str]:
    """Return auction ``row``'s summary line, then its bids in arrival order
    as an aligned table with the winner's bid marked (or NO_BIDS)."""
    if not row.bids:
        return [summary(row), NO_BIDS]
    zone = time_zone(bid.at for bid in row.bids)
    headings = ("#", time_heading("arrived", zone), "buyer", "amount", "")
    rows = (
        (
            str(bid.arrival),
            local_time(bid.at, zone, millis=True),
            f"Buyer {bid.buyer}",
            f"${bid.amount}",
            WINNER if bid.buyer == row.winner else "",
        )
        for bid in row.bids
    )
    return [summary(row), *aligned(headings, rows)]


# --- formats for programs ---------------------------------------------------------------


def to_json(row: PastAuction) -> str:
    """Return one auction as a single line of JSON with every field and its bids."""
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
            "bids": [
                {"buyer": bid.buyer, "amount": bid.amount, "arrival": bid.arrival,
                 "at": utc_iso(bid.at)}
                for bid in row.bids
            ],
        },
        ensure_ascii=False,
    )


def _csv_lines(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Return CSV lines (RFC 4180 quoting): the headings, then the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headings)
    writer.writerows(rows)
    return buffer.getvalue().splitlines()


def auctions_csv(rows: Sequence[PastAuction]) -> list[str]:
    """Return the auctions as CSV lines, CSV_AUCTIONS columns."""
    return _csv_lines(
        CSV_AUCTIONS,
        (
            (
                row.id, utc_plain(row.ended_at), utc_plain(row.started_at), row.item,
                row.pricing, row.min_price, row.buyers_requested, row.buyers_connected,
                row.outcome, row.reason, "" if row.winner is None else row.winner,
                row.winner_address, row.seller_address, row.highest, row.price,
                len(row.bids),
            )
            for row in rows
        ),
    )


def bids_csv(row: PastAuction) -> list[str]:
    """Return one auction's bids as CSV lines, CSV_BIDS columns."""
    return _csv_lines(
        CSV_BIDS,
        (
            (row.id, bid.arrival, utc_plain(bid.at), bid.buyer, bid.amount,
             "yes" if bid.buyer == row.winner else "")
            for bid in row.bids
        ),
    )
