"""The ledger: records, schema and migrations, commit-before-result,
crash safety, start-up errors, and ``auc_server history``.

Unit tests drive ``Ledger`` directly; process tests run the real server with
``--ledger`` in tmp_path and read the SQLite file afterwards. Every wait is on
an event (a line, EOF, a console line, process exit); the only timeout that
expects nothing is the short "no result while locked" check.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SERVER_BIN, RawClient, ServerProcess
from test_server import bid as bid_one
from test_server import depart as reset
from test_server import fill as buyers_join
from test_server import local_port, open_seller

from reactor_auction import history as history_cli
from reactor_auction import ledger as ledger_mod
from reactor_auction.events import AuctionRecord, BidRecord
from reactor_auction.ledger import SCHEMA_VERSION, Ledger, LedgerBusy, LedgerError, history
from reactor_auction.protocol import CancelReason, Pricing

#: The process tests check this implementation's ledger file.
own_server = pytest.mark.skipif(
    bool(os.environ.get("AUC_SERVER")), reason="the ledger file is this implementation's"
)

Start = Callable[..., ServerProcess]
Connect = Callable[[int], RawClient]

# --- helpers ---------------------------------------------------------------------


#: (buyer, amount) in arrival order: buyer 2 wins a second-price auction at 150.
THREE_BIDS = ((1, 120), (2, 180), (3, 150))


def make_record(
    outcome: str = "sold",
    *,
    reason: str = "",
    bids: tuple[tuple[int, int], ...] = THREE_BIDS,
    item: str = "WolfPackSword",
) -> AuctionRecord:
    """Return a record that started 2 s ago (monotonic), bids a bit later;
    a sold one is won by buyer 2 for 150."""
    now = time.monotonic()
    bid_records = tuple(
        BidRecord(buyer, amount, order, now - 1.0 + order * 0.1)
        for order, (buyer, amount) in enumerate(bids, start=1)
    )
    sold = outcome == "sold"
    highest = max((amount for _, amount in bids), default=0)
    return AuctionRecord(
        item=item, pricing=Pricing.SECOND, min_price=100, buyers_requested=3,
        buyers_connected=len(bids), outcome=outcome,
        reason=CancelReason(reason) if reason else None,
        winner=2 if sold else None, winner_peer="127.0.0.1:4002" if sold else "",
        highest=highest, price=150 if sold else 0, started_at=now - 2.0, ended_at=now,
        seller_peer="127.0.0.1:4000", bids=bid_records,
    )


def query(path: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    """Return the rows of one query on the ledger file (a fresh connection)."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def auctions(path: Path) -> list[sqlite3.Row]:
    return query(path, "SELECT * FROM auctions ORDER BY id")


def bids_of(path: Path, auction_id: int) -> list[tuple[int, int, int]]:
    """Return (buyer, amount, arrival) of one auction, in arrival order."""
    rows = query(
        path, "SELECT buyer, amount, arrival FROM bids WHERE auction_id = ? ORDER BY arrival",
        auction_id,
    )
    return [(row["buyer"], row["amount"], row["arrival"]) for row in rows]


def user_version(path: Path) -> int:
    return int(query(path, "PRAGMA user_version")[0][0])


def assert_times(path: Path, row: sqlite3.Row, since: float) -> None:
    """Start <= every bid <= end, all Unix times between ``since`` and now."""
    now = time.time()
    assert since - 1 <= row["started_at"] <= row["ended_at"] <= now + 1
    for (at,) in query(path, "SELECT at FROM bids WHERE auction_id = ?", row["id"]):
        assert row["started_at"] <= at <= row["ended_at"]


def the_row(path: Path, since: float, bids: list[tuple[int, int, int]]) -> sqlite3.Row:
    """Return the ledger's only auction, after checking its bids and times."""
    (row,) = auctions(path)
    assert bids_of(path, row["id"]) == bids
    assert_times(path, row, since)
    return row


def port_of(client: RawClient) -> str:
    return f":{local_port(client)}"


def bid(buyers: list[RawClient], amounts: list[int]) -> None:
    for buyer, amount in zip(buyers, amounts, strict=True):
        bid_one(buyer, amount)


def sold_auction(connect: Connect, port: int) -> tuple[RawClient, list[RawClient]]:
    """Run a whole second-price auction for "Lamp"; every result is read."""
    seller = open_seller(connect, port, b"2 100 2 Lamp")
    buyers = buyers_join(connect, port, 2)
    bid(buyers, [130, 170])
    seller.expect(b"SOLD 130 Lamp")
    buyers[0].expect(b"LOST Lamp")
    buyers[1].expect(b"WON 130 Lamp")
    return seller, buyers


def assert_silent(clients: list[RawClient], seconds: float = 0.3) -> None:
    """Assert nothing arrives on any of ``clients`` within ``seconds``."""
    assert all(client._buf == b"" for client in clients)
    readable, _, _ = select.select([client.sock for client in clients], [], [], seconds)
    assert readable == [], "a client got something while the ledger was locked"


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "auctions.sqlite3"


@pytest.fixture
def opened(ledger_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(str(ledger_path))
    yield ledger
    ledger.close()


# --- record() ---------------------------------------------------------------------


def test_sold_record_has_every_field_and_bids_in_order(opened: Ledger, ledger_path: Path) -> None:
    since = time.time()
    number = opened.record(make_record("sold"))
    (row,) = auctions(ledger_path)
    assert row["id"] == number
    assert (row["item"], row["kind"], row["min_price"]) == ("WolfPackSword", 2, 100)
    assert (row["buyers_requested"], row["buyers_connected"]) == (3, 3)
    assert (row["outcome"], row["reason"]) == ("sold", "")
    assert (row["winner"], row["winner_address"]) == (2, "127.0.0.1:4002")
    assert (row["highest"], row["price"], row["seller_address"]) == (180, 150, "127.0.0.1:4000")
    assert row["ended_at"] - row["started_at"] == pytest.approx(2.0, abs=0.01)
    assert_times(ledger_path, row, since - 2)
    assert bids_of(ledger_path, number) == [(1, 120, 1), (2, 180, 2), (3, 150, 3)]


@pytest.mark.parametrize(
    ("outcome", "reason", "bids"),
    [("unsold", "", ((1, 50), (3, 90))), ("cancelled", "seller-left", ()),
     ("cancelled", "shutdown", ((2, 300),))],
)
def test_unsold_and_cancelled_records(
    opened: Ledger, ledger_path: Path, outcome: str, reason: str,
    bids: tuple[tuple[int, int], ...],
) -> None:
    opened.record(make_record("sold"))
    number = opened.record(make_record(outcome, reason=reason, bids=bids))
    row = auctions(ledger_path)[-1]
    assert (row["id"], row["outcome"], row["reason"]) == (number, outcome, reason)
    assert (row["winner"], row["winner_address"], row["price"]) == (None, "", 0)
    assert row["highest"] == max((a for _, a in bids), default=0)
    assert bids_of(ledger_path, number) == [(b, a, i) for i, (b, a) in enumerate(bids, 1)]


def test_locked_database_raises_busy_at_once_and_writes_nothing(
    opened: Ledger, ledger_path: Path
) -> None:
    lock = sqlite3.connect(ledger_path, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        # Opening needs no write lock once the file is set up; the start-up
        # wait for locks must not stay on for record().
        late = Ledger(str(ledger_path))
        for ledger in (opened, late):
            began = time.monotonic()
            with pytest.raises(LedgerBusy):
                ledger.record(make_record())
            assert time.monotonic() - began < 0.5  # no waiting inside the loop
        late.close()
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    assert auctions(ledger_path) == []
    assert opened.record(make_record()) == 1  # usable again once released


# --- schema, versions, migrations --------------------------------------------------


def test_new_file_has_a_rollback_journal_at_the_current_version(ledger_path: Path) -> None:
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        # FULL: a commit is on disk before record() returns.
        assert ledger._db is not None
        assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert user_version(ledger_path) == SCHEMA_VERSION == len(ledger_mod._MIGRATIONS)
    assert query(ledger_path, "PRAGMA journal_mode")[0][0] == "delete"
    tables = {r[0] for r in query(ledger_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"auctions", "bids"}


def test_empty_version_0_file_is_migrated(ledger_path: Path) -> None:
    ledger_path.write_bytes(b"")  # as `touch` leaves it: SQLite's version 0
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        ledger.record(make_record())
    assert user_version(ledger_path) == SCHEMA_VERSION
    assert len(auctions(ledger_path)) == 1


def _with_v2(monkeypatch: pytest.MonkeyPatch, *statements: str) -> None:
    """Pretend the code knows one more schema version made of ``statements``."""
    monkeypatch.setattr(ledger_mod, "_MIGRATIONS", [*ledger_mod._MIGRATIONS, statements])
    monkeypatch.setattr(ledger_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)


def test_a_future_version_slots_in_as_one_more_migration(
    ledger_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        ledger.record(make_record())
    _with_v2(
        monkeypatch,
        "ALTER TABLE auctions ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX auctions_ended ON auctions (ended_at)",
    )
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:  # v1 -> v2, rows kept
        ledger.record(make_record("unsold", bids=()))
    assert user_version(ledger_path) == SCHEMA_VERSION + 1
    assert [(r["outcome"], r["note"]) for r in auctions(ledger_path)] == [
        ("sold", ""), ("unsold", "")]
    fresh = tmp_path / "fresh.sqlite3"
    Ledger(str(fresh)).close()  # v0 -> v1 -> v2 in one open
    assert user_version(fresh) == SCHEMA_VERSION + 1


def test_a_failing_migration_leaves_the_file_at_its_version(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Ledger(str(ledger_path)).close()
    _with_v2(monkeypatch, "ALTER TABLE auctions ADD COLUMN note TEXT", "THIS IS NOT SQL")
    with pytest.raises(LedgerError, match="cannot use ledger"):
        Ledger(str(ledger_path))
    assert user_version(ledger_path) == SCHEMA_VERSION
    columns = [r["name"] for r in query(ledger_path, "PRAGMA table_info(auctions)")]
    assert "note" not in columns  # the whole step was rolled back


def _newer_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()


def test_a_newer_schema_is_refused_and_left_untouched(ledger_path: Path) -> None:
    _newer_file(ledger_path)
    with pytest.raises(LedgerError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Ledger(str(ledger_path))
    assert user_version(ledger_path) == SCHEMA_VERSION + 1
    assert query(ledger_path, "PRAGMA journal_mode")[0][0] == "delete"  # as it was
    assert query(ledger_path, "SELECT name FROM sqlite_master") == []
    with pytest.raises(LedgerError, match="schema version"):
        history(str(ledger_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"these are my notes, not a database\n" * 20, "is not an SQLite database"),
        (b"x", "is not an SQLite database"),  # SQLite itself would overwrite this one
        # The right header, garbage after it: SQLite notices on the first read
        # (PRAGMA user_version), since connect() itself reads nothing.
        (b"SQLite format 3\x00" + b"\xff" * 200, "file is not a database"),
    ],
    ids=["text", "one-byte", "sqlite-header"],
)
def test_a_file_that_is_not_a_database_is_refused_and_kept(
    ledger_path: Path, content: bytes, message: str
) -> None:
    ledger_path.write_bytes(content)
    with pytest.raises(LedgerError, match=message):
        Ledger(str(ledger_path))
    assert ledger_path.read_bytes() == content


# --- the server: rows for each ending ----------------------------------------------


@own_server
def test_server_records_a_sold_auction(start_server: Start, connect: Connect,
                                       ledger_path: Path) -> None:
    since = time.time()
    server = start_server("--ledger", str(ledger_path))
    seller = open_seller(connect, server.port, b"2 100 3 Wolf Pack Sword")
    buyers = buyers_join(connect, server.port, 3)
    bid(buyers, [120, 150, 180])
    seller.expect(b"SOLD 150 Wolf Pack Sword")
    buyers[2].expect(b"WON 150 Wolf Pack Sword")
    # Committed before the first result line went out:
    row = the_row(ledger_path, since, [(1, 120, 1), (2, 150, 2), (3, 180, 3)])
    assert (row["item"], row["kind"], row["min_price"]) == ("Wolf Pack Sword", 2, 100)
    assert (row["buyers_requested"], row["buyers_connected"]) == (3, 3)
    assert (row["outcome"], row["winner"], row["highest"], row["price"]) == ("sold", 3, 180, 150)
    assert row["winner_address"].endswith(port_of(buyers[2]))
    assert row["seller_address"].endswith(port_of(seller))
    server.wait_for(f">> Auction #{row['id']} recorded in {ledger_path}")


@own_server
def test_server_records_an_unsold_auction(start_server: Start, connect: Connect,
                                          ledger_path: Path) -> None:
    since = time.time()
    server = start_server("--ledger", str(ledger_path))
    seller = open_seller(connect, server.port, b"1 500 2 Vase")
    buyers = buyers_join(connect, server.port, 2)
    bid(buyers, [200, 100])
    for client in (seller, *buyers):
        client.expect(b"UNSOLD 200 Vase")
    row = the_row(ledger_path, since, [(1, 200, 1), (2, 100, 2)])
    assert (row["outcome"], row["kind"], row["min_price"]) == ("unsold", 1, 500)
    assert (row["winner"], row["winner_address"], row["highest"], row["price"]) == (
        None, "", 200, 0)


@own_server
def test_seller_leaving_while_buyers_wait_is_recorded_as_cancelled(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    since = time.time()
    server = start_server("--ledger", str(ledger_path))
    seller = open_seller(connect, server.port, b"2 100 2 Kettle")
    buyer = connect(server.port)
    buyer.expect(b"ROLE BUYER 1", b"WAITING 1 2")
    reset(seller)
    buyer.expect(b"CANCELLED seller-left")
    buyer.expect_closed()
    row = the_row(ledger_path, since, [])
    assert (row["item"], row["outcome"], row["reason"]) == ("Kettle", "cancelled", "seller-left")
    assert (row["buyers_requested"], row["buyers_connected"]) == (2, 1)
    assert (row["winner"], row["highest"], row["price"]) == (None, 0, 0)


@own_server
def test_sigterm_while_bidding_is_recorded_as_cancelled(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    since = time.time()
    server = start_server("--ledger", str(ledger_path))
    seller = open_seller(connect, server.port, b"1 100 3 Clock")
    buyers = buyers_join(connect, server.port, 3)
    bid(buyers[:2], [200, 150])  # the third is still thinking
    server.signal(signal.SIGTERM)
    for client in (seller, *buyers):
        client.expect(b"CANCELLED shutdown")
        client.expect_closed()
        client.close()  # the server lingers for our FIN before it exits
    assert server.wait_exit() == 0
    row = the_row(ledger_path, since, [(1, 200, 1), (2, 150, 2)])
    assert (row["outcome"], row["reason"], row["buyers_connected"]) == ("cancelled", "shutdown", 3)
    assert (row["winner"], row["highest"], row["price"]) == (None, 200, 0)
    assert query(ledger_path, "PRAGMA integrity_check")[0][0] == "ok"


# --- commit before result ----------------------------------------------------------


@own_server
def test_no_result_leaves_before_the_commit(start_server: Start, connect: Connect,
                                            ledger_path: Path) -> None:
    server = start_server("--ledger", str(ledger_path))
    seller = open_seller(connect, server.port, b"1 100 2 Lamp")
    buyers = buyers_join(connect, server.port, 2)
    lock = sqlite3.connect(ledger_path, isolation_level=None, timeout=0)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the write lock: the server cannot commit
        bid(buyers, [150, 120])
        server.wait_for("Ledger is busy")  # it tried, and the result waits
        assert_silent([seller, *buyers])
        newcomer = connect(server.port)
        newcomer.expect(b"BUSY")
        newcomer.expect_closed()
        assert auctions(ledger_path) == []  # readers see nothing yet
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    seller.expect(b"SOLD 150 Lamp")
    buyers[0].expect(b"WON 150 Lamp")
    buyers[1].expect(b"LOST Lamp")
    (row,) = auctions(ledger_path)
    assert (row["item"], row["outcome"], row["price"]) == ("Lamp", "sold", 150)


# --- crashes -------------------------------------------------------------------------


@own_server
@pytest.mark.parametrize("state", ["waiting-seller", "waiting-buyers", "bidding", "results"])
def test_kill_9_in_any_state_keeps_every_told_result(
    start_server: Start, connect: Connect, ledger_path: Path, state: str
) -> None:
    server = start_server("--ledger", str(ledger_path))
    port = server.port
    sold_auction(connect, port)  # told: must survive the crash
    if state == "waiting-seller":
        connect(port).expect(b"ROLE SELLER", b"REQUEST")
    elif state == "waiting-buyers":
        open_seller(connect, port, b"1 10 2 Vase")
        connect(port).expect(b"ROLE BUYER 1", b"WAITING 1 2")
    elif state == "bidding":
        open_seller(connect, port, b"1 10 2 Vase")
        bid(buyers_join(connect, port, 2)[:1], [50])
    else:  # a second auction: killed the moment its first result arrives
        seller = open_seller(connect, port, b"1 10 1 Vase")
        bid(buyers_join(connect, port, 1), [50])
        seller.expect(b"SOLD 50 Vase")
    server.proc.kill()
    assert server.wait_exit() == -signal.SIGKILL
    told = ["Lamp"] + (["Vase"] if state == "results" else [])

    restarted = start_server("--ledger", str(ledger_path), port=port)  # same port at once
    assert query(ledger_path, "PRAGMA integrity_check")[0][0] == "ok"
    assert [row["item"] for row in auctions(ledger_path)] == told
    sold_auction(connect, restarted.port)  # and it goes on writing the same file
    assert [row["item"] for row in auctions(ledger_path)] == [*told, "Lamp"]


# --- start-up errors ----------------------------------------------------------------


def _bad_ledger(kind: str, tmp_path: Path) -> str:
    """Return a ledger path that cannot be used, for each kind of trouble."""
    regular = tmp_path / "notes.txt"
    regular.write_text("my notes\n")
    newer = tmp_path / "newer.sqlite3"
    _newer_file(newer)
    return {
        "missing-directory": str(tmp_path / "no-such-dir" / "ledger.sqlite3"),
        "under-a-file": str(regular / "ledger.sqlite3"),  # root writes anywhere but here
        "a-directory": str(tmp_path),
        "not-a-database": str(regular),
        "newer-version": str(newer),
        "empty": "",  # SQLite would make a temporary database of it
    }[kind]


@own_server
@pytest.mark.parametrize(
    "kind",
    ["missing-directory", "under-a-file", "a-directory", "not-a-database", "newer-version",
     "empty"],
)
def test_unusable_ledger_fails_with_one_line_before_the_port_opens(
    start_server: Start, tmp_path: Path, kind: str
) -> None:
    # We hold the port: a server that tried to listen first would exit 4.
    with socket.create_server(("", 0)) as holder:
        port = holder.getsockname()[1]
        server = start_server("--ledger", _bad_ledger(kind, tmp_path), ready=False, port=port)
        assert server.wait_exit() == 3
    (line,) = server.errors
    assert line.startswith("auc_server: ") and "ledger" in line
    assert server.output == []


@own_server
def test_held_port_is_exit_4_with_a_good_ledger(start_server: Start, ledger_path: Path) -> None:
    """The control for the test above: the held port is really noticed."""
    with socket.create_server(("", 0)) as holder:
        server = start_server("--ledger", str(ledger_path), ready=False,
                              port=holder.getsockname()[1])
        assert server.wait_exit() == 4


# --- history ---------------------------------------------------------------------------


@pytest.fixture
def filled(ledger_path: Path) -> Path:
    """A ledger with a sold, an unsold and a cancelled auction (ids 1-3)."""
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        ledger.record(make_record("sold"))
        ledger.record(make_record("unsold", bids=((1, 50), (2, 60)), item="Blue Vase"))
        ledger.record(make_record("cancelled", reason="seller-left", bids=()))
    return ledger_path


def run_history(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    status = history_cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_history_table_is_aligned_newest_first(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, lines, err = run_history(capsys, "--ledger", str(filled))
    assert (status, err) == (0, "")
    header, *rows = lines
    zone = history_cli.utc_offset(time.localtime().tm_gmtoff)
    assert re.split(" {2,}", header.strip()) == [
        "id", f"ended (local, {zone})", "item", "type", "outcome", "winner", "price", "bids"]
    ended = {r["id"]: r["ended_at"] for r in auctions(filled)}
    expected = [
        (3, "WolfPackSword", "second", "cancelled (seller-left)", "-", "-", "0"),
        (2, "Blue Vase", "second", "unsold", "-", "-", "2"),
        (1, "WolfPackSword", "second", "sold", "Buyer 2", "$150", "3"),
    ]
    assert len(rows) == len(expected)
    for line, (number, *cells) in zip(rows, expected, strict=True):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended[number]))
        assert line.startswith(f" {number}  {when}  ")  # the id right-aligned under "id"
        for heading, cell in zip(["item", "type", "outcome", "winner"], cells, strict=False):
            assert line[header.index(heading):].startswith(cell), (heading, line)
        # price and bids are right-aligned under the end of their heading
        price_end = header.index("price") + len("price")
        assert line[:price_end].endswith(cells[4])
        assert line.endswith(" " + cells[5]) and len(line) == len(header)


def test_history_json_has_every_field(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run_history(capsys, "--ledger", str(filled), "--json")
    assert status == 0
    objects = [json.loads(line) for line in lines]
    assert [o["id"] for o in objects] == [3, 2, 1]
    sold = objects[2]
    row = auctions(filled)[0]
    assert sold == {
        "id": 1, "item": "WolfPackSword", "type": 2, "min_price": 100,
        "buyers_requested": 3, "buyers_connected": 3, "outcome": "sold", "reason": "",
        "winner": 2, "winner_address": "127.0.0.1:4002", "seller_address": "127.0.0.1:4000",
        "highest": 180, "price": 150, "bids": sold["bids"],
        "started_at": sold["started_at"], "ended_at": sold["ended_at"],
    }
    for key in ("started_at", "ended_at"):
        moment = datetime_utc(sold[key])
        assert moment == pytest.approx(row[key], abs=0.001)
    at = [bid.pop("at") for bid in sold["bids"]]
    assert sold["bids"] == [
        {"buyer": 1, "amount": 120, "arrival": 1}, {"buyer": 2, "amount": 180, "arrival": 2},
        {"buyer": 3, "amount": 150, "arrival": 3}]
    stored = query(filled, "SELECT at FROM bids WHERE auction_id = 1 ORDER BY arrival")
    assert [datetime_utc(text) for text in at] == pytest.approx([r[0] for r in stored], abs=0.001)
    assert objects[0]["bids"] == []
    assert (objects[0]["outcome"], objects[0]["reason"], objects[0]["winner"]) == (
        "cancelled", "seller-left", None)
    status, lines, _ = run_history(capsys, "--ledger", str(filled), "--json", "--limit", "1")
    assert [json.loads(line)["id"] for line in lines] == [3]


def datetime_utc(text: str) -> float:
    """Return the Unix time of an ISO-8601 time that must be in UTC."""
    moment = datetime.datetime.fromisoformat(text)
    assert moment.utcoffset() == datetime.timedelta(0)
    return moment.timestamp()


def test_history_of_an_empty_ledger(opened: Ledger, ledger_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run_history(capsys, "--ledger", str(ledger_path))
    assert status == 0
    zone = history_cli.utc_offset(time.localtime().tm_gmtoff)
    assert re.split(" {2,}", lines[0]) == list(history_cli.columns(zone))
    assert lines[1:] == ["No auctions recorded yet."]
    assert run_history(capsys, "--ledger", str(ledger_path), "--json") == (0, [], "")


def test_history_without_a_ledger_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.sqlite3"
    status, lines, err = run_history(capsys, "--ledger", str(missing))
    assert (status, lines) == (3, [])
    assert len(err.splitlines()) == 1 and f"no ledger at {missing}" in err
    assert "--ledger PATH" in err
    assert not missing.exists()  # reading never creates it


def test_history_through_the_launcher(filled: Path, tmp_path: Path) -> None:
    """``python3 bin/auc_server history`` from anywhere, as from a fresh clone."""
    def launch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SERVER_BIN), "history", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )

    done = launch("--ledger", filled.name, "--json")
    assert (done.returncode, done.stderr) == (0, "")
    assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == [3, 2, 1]
    done = launch()  # the default file is not in tmp_path
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
