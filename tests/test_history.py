"""``auc_server history``: one auction's bids, JSON with the bids, CSV, the
time column's zone, and what it says when there is no ledger.

Most tests call history.main with captured output; the no-ledger one runs
``python3 -m reactor_auction.server history`` as a person would.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, WAIT
from test_ledger import make_record

from reactor_auction import history as history_cli
from reactor_auction.ledger import Ledger


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """Auctions 1 sold (buyer 2 wins, bids 120, 180, 150), 2 unsold (an item
    with a comma and quotes), 3 cancelled without bids."""
    path = tmp_path / "auctions.sqlite3"
    with contextlib.closing(Ledger(str(path))) as ledger:
        ledger.record(make_record("sold"))
        ledger.record(make_record("unsold", bids=((1, 50), (3, 90)), item='Blue, "big" Vase'))
        ledger.record(make_record("cancelled", reason="seller-left", bids=()))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = history_cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def stored_bids(path: Path, auction_id: int) -> list[tuple[int, int, int, float]]:
    """Return (arrival, buyer, amount, at) of one auction's bids as stored."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(
            "SELECT arrival, buyer, amount, at FROM bids WHERE auction_id = ? ORDER BY arrival",
            (auction_id,),
        ).fetchall()


def local_millis(when: float) -> str:
    """Return a Unix time as local time to the millisecond (truncated)."""
    return datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def columns_of(line: str) -> list[str]:
    """Split an aligned table line into its cells (two or more spaces apart)."""
    return re.split(" {2,}", line.strip())


# --- --bids ID -------------------------------------------------------------------------


def test_bids_lists_one_auction_in_arrival_order_with_the_winner_marked(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = run(capsys, "--ledger", str(filled), "--bids", "1")
    assert (status, err) == (0, "")
    summary, header, *rows = lines
    assert summary == (
        "Auction #1: WolfPackSword (second price, min $100, 3 of 3 buyers): "
        "sold to Buyer 2 for $150"
    )
    zone = history_cli.utc_offset(time.localtime().tm_gmtoff)
    assert columns_of(header) == ["#", f"arrived (local, {zone})", "buyer", "amount"]
    stored = stored_bids(filled, 1)
    assert len(rows) == len(stored) == 3
    for line, (arrival, buyer, amount, at) in zip(rows, stored, strict=True):
        mark = ["winner"] if buyer == 2 else []
        assert columns_of(line) == [str(arrival), local_millis(at), f"Buyer {buyer}",
                                    f"${amount}", *mark]
        # amounts right-aligned under the end of their heading
        end = header.index("amount") + len("amount")
        assert line[:end].endswith(f"${amount}")


def test_bids_of_an_unsold_and_of_a_cancelled_auction(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, _ = run(capsys, "--ledger", str(filled), "--bids", "2")
    assert status == 0
    assert lines[0] == ('Auction #2: Blue, "big" Vase (second price, min $100, 2 of 3 buyers): '
                        "unsold, highest bid $90")
    assert [columns_of(line)[2:] for line in lines[2:]] == [["Buyer 1", "$50"],
                                                            ["Buyer 3", "$90"]]
    status, lines, _ = run(capsys, "--ledger", str(filled), "--bids", "3")
    assert (status, lines) == (0, [
        "Auction #3: WolfPackSword (second price, min $100, 0 of 3 buyers): "
        "cancelled (seller-left)",
        "No bids.",
    ])


def test_bids_of_an_auction_that_is_not_there(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = run(capsys, "--ledger", str(filled), "--bids", "9")
    assert (status, lines) == (1, [])
    assert err == (f"auc_server history: ledger {filled} has no auction #9"
                   " (auc_server history lists their ids)\n")


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_bids_needs_a_positive_id(
    filled: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        history_cli.main(["--ledger", str(filled), "--bids", bad])
    assert stopped.value.code == 2


# --- --json and --csv -----------------------------------------------------------------------


def utc(text: str) -> float:
    moment = datetime.datetime.fromisoformat(text)
    assert moment.utcoffset() == datetime.timedelta(0)
    return moment.timestamp()


def test_json_includes_every_bid(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "--ledger", str(filled), "--json")
    assert status == 0
    objects = {obj["id"]: obj for obj in map(json.loads, lines)}
    for number in (1, 2, 3):
        bids = objects[number]["bids"]
        stored = stored_bids(filled, number)
        assert [(b["arrival"], b["buyer"], b["amount"]) for b in bids] == [
            row[:3] for row in stored]
        assert [utc(b["at"]) for b in bids] == pytest.approx([row[3] for row in stored],
                                                             abs=0.001)
    status, lines, _ = run(capsys, "--ledger", str(filled), "--json", "--bids", "2")
    assert status == 0 and [json.loads(line) for line in lines] == [objects[2]]


def utc_plain(text: str) -> float:
    moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def test_csv_has_a_heading_row_and_one_row_per_auction(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = run(capsys, "--ledger", str(filled), "--csv")
    assert (status, err) == (0, "")
    header, *rows = list(csv.reader(lines))
    assert tuple(header) == history_cli.CSV_AUCTIONS
    records = [dict(zip(header, row, strict=True)) for row in rows]
    assert [r["id"] for r in records] == ["3", "2", "1"]
    sold, unsold = records[2], records[1]
    assert {k: sold[k] for k in ("item", "type", "min_price", "outcome", "winner", "price",
                                  "highest", "bids", "winner_address")} == {
        "item": "WolfPackSword", "type": "2", "min_price": "100", "outcome": "sold",
        "winner": "2", "price": "150", "highest": "180", "bids": "3",
        "winner_address": "127.0.0.1:4002"}
    assert (unsold["item"], unsold["winner"], unsold["bids"]) == ('Blue, "big" Vase', "", "2")
    assert records[0]["reason"] == "seller-left"
    with contextlib.closing(sqlite3.connect(filled)) as db:
        ended = dict(db.execute("SELECT id, ended_at FROM auctions").fetchall())
    for record in records:
        assert utc_plain(record["ended_utc"]) == pytest.approx(ended[int(record["id"])],
                                                               abs=0.001)
        assert utc_plain(record["started_utc"]) < utc_plain(record["ended_utc"])


def test_csv_of_one_auctions_bids(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "--ledger", str(filled), "--csv", "--bids", "1")
    assert status == 0
    header, *rows = list(csv.reader(lines))
    assert tuple(header) == history_cli.CSV_BIDS
    stored = stored_bids(filled, 1)
    assert [row[:2] + row[3:] for row in rows] == [
        ["1", str(arrival), str(buyer), str(amount), "yes" if buyer == 2 else ""]
        for arrival, buyer, amount, _ in stored]
    assert [utc_plain(row[2]) for row in rows] == pytest.approx([r[3] for r in stored],
                                                                abs=0.001)


def test_json_and_csv_exclude_each_other(filled: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        history_cli.main(["--ledger", str(filled), "--json", "--csv"])
    assert stopped.value.code == 2


# --- which time ----------------------------------------------------------------------------


@pytest.fixture
def zone() -> Iterator[object]:
    """Return ``use(tz)``: set the local time zone (a POSIX TZ string, which
    needs no tz database) for the rest of the test."""
    before = os.environ.get("TZ")

    def use(tz: str) -> None:
        os.environ["TZ"] = tz
        time.tzset()

    yield use
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_the_time_heading_names_the_utc_offset(
    filled: Path, capsys: pytest.CaptureFixture[str], zone: object
) -> None:
    zone("IST-5:30")  # type: ignore[operator]
    status, lines, _ = run(capsys, "--ledger", str(filled), "--limit", "1")
    assert status == 0
    assert columns_of(lines[0])[1] == "ended (local, UTC+05:30)"
    with contextlib.closing(sqlite3.connect(filled)) as db:
        (ended,) = db.execute("SELECT ended_at FROM auctions WHERE id = 3").fetchone()
    shifted = datetime.datetime.fromtimestamp(ended, datetime.timezone.utc) + datetime.timedelta(
        hours=5, minutes=30)
    assert columns_of(lines[1])[1] == shifted.strftime("%Y-%m-%d %H:%M:%S")
    zone("UTC0")  # type: ignore[operator]
    assert columns_of(run(capsys, "--ledger", str(filled))[1][0])[1] == "ended (local, UTC)"
    zone("EST5")  # type: ignore[operator]
    assert columns_of(run(capsys, "--ledger", str(filled))[1][0])[1] == (
        "ended (local, UTC-05:00)")


def test_times_on_both_sides_of_a_clock_change_carry_their_offset(
    filled: Path, capsys: pytest.CaptureFixture[str], zone: object
) -> None:
    zone("CET-1CEST,M3.5.0,M10.5.0/3")  # type: ignore[operator]
    winter = datetime.datetime(2030, 1, 15, 12, tzinfo=datetime.timezone.utc).timestamp()
    summer = datetime.datetime(2030, 7, 15, 12, tzinfo=datetime.timezone.utc).timestamp()
    with contextlib.closing(sqlite3.connect(filled)) as db, db:
        db.execute("UPDATE auctions SET ended_at = ? WHERE id = 1", (winter,))
        db.execute("UPDATE auctions SET ended_at = ? WHERE id = 2", (summer,))
    status, lines, _ = run(capsys, "--ledger", str(filled), "--limit", "2")
    assert status == 0
    assert columns_of(lines[0])[1] == "ended (local)"  # no one offset for every row
    assert lines[2].startswith(" 2  2030-07-15 14:00:00 UTC+02:00  ")
    status, lines, _ = run(capsys, "--ledger", str(filled), "--limit", "0")
    assert lines[3].startswith(" 1  2030-01-15 13:00:00 UTC+01:00  ")


# --- no ledger ------------------------------------------------------------------------------


def test_no_ledger_names_the_absolute_path_and_the_option(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reactor_auction.server", "history"],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert (done.returncode, done.stdout) == (3, "")
    looked_for = tmp_path / "auction-ledger.sqlite3"
    assert done.stderr == (
        f"auc_server history: no ledger at {looked_for} (nothing has been recorded there);"
        " --ledger PATH reads another file\n"
    )
    assert not looked_for.exists()
