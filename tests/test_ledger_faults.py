"""The ledger's files attacked from outside the protocol, against a real server.

Each fault is applied between two auctions (or at start-up): the ledger made
immutable or its directory read-only, the disk full, side files truncated or
deleted before a kill -9, the file unlinked, its directory removed, the path
replaced by a directory, a FIFO as ``--ledger``, a lock held for seconds. The
server must stay up, tell nobody a result it has not committed, turn
newcomers away meanwhile, and send the held results once the path is usable
again, with every told auction in the file at ``--ledger``.

These need root (chattr, mount); they skip, saying why, where it is missing.
Every wait is on an event (a console line, a client's line, EOF, exit).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ROOT, WAIT, RawClient, ServerProcess
from test_ledger import assert_silent, bid, make_record, own_server, sold_auction
from test_server import fill as buyers_join
from test_server import open_seller

from reactor_auction import ledger as ledger_mod
from reactor_auction.ledger import SCHEMA_VERSION, Ledger, LedgerBusy, LedgerError, history

Start = Callable[..., ServerProcess]
Connect = Callable[[int], RawClient]

#: The console line (standard error) of a commit that failed.
FAILED = "cannot record the auction"


# --- helpers ---------------------------------------------------------------------


def side_files(path: Path) -> list[Path]:
    """Return the files SQLite keeps beside ``path`` (-journal, -wal, -shm)."""
    return sorted(path.parent.glob(path.name + "-*"))


def items(path: Path) -> list[str]:
    """Return the items recorded at ``path``, oldest first, reading it
    read-only (so that a missing file is not created by looking)."""
    assert path.is_file(), f"nothing at {path}"
    uri = path.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return [row[0] for row in db.execute("SELECT item FROM auctions ORDER BY id")]


def query_ok(path: Path) -> bool:
    """Return True if SQLite finds the file at ``path`` sound."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def last_auction(server: ServerProcess, connect: Connect, *, held: bool) -> list[RawClient]:
    """Run a first-price auction for "Vase" up to its last bid; wait for the
    server's report that it cannot record it. With ``held``, also check that
    nobody is told anything, that a newcomer is turned away, and that the
    server is still up. Return [seller, winner, loser]."""
    seller = open_seller(connect, server.port, b"1 100 2 Vase")
    buyers = buyers_join(connect, server.port, 2)
    bid(buyers, [300, 200])
    server.wait_for(FAILED, stderr=True)
    clients = [seller, *buyers]
    if held:
        assert_silent(clients)
        newcomer = connect(server.port)
        assert newcomer.line().startswith(b"BUSY")
        newcomer.expect_closed()
        assert server.proc.poll() is None
    return clients


def results_out(clients: list[RawClient]) -> float:
    """Wait for the results of last_auction's "Vase"; return the seconds it took."""
    began = time.monotonic()
    seller, winner, loser = clients
    seller.expect(b"SOLD 300 Vase")
    winner.expect(b"WON 300 Vase")
    loser.expect(b"LOST Vase")
    return time.monotonic() - began


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (chattr +i, mount)")


class Immutable:
    """Sets and clears the immutable attribute (``chattr +i``)."""

    def __init__(self) -> None:
        self.frozen: list[Path] = []

    def freeze(self, *paths: Path) -> None:
        for path in paths:
            subprocess.run(["chattr", "+i", str(path)], check=True)
            self.frozen.append(path)

    def thaw(self) -> None:
        while self.frozen:
            subprocess.run(["chattr", "-i", str(self.frozen.pop())], check=False)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Immutable]:
    """chattr, once it is known to work on tmp_path's file system; every
    file it froze is thawed at the end (or tmp_path could not be removed)."""
    needs_root()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed (e2fsprogs)")
    probe = tmp_path / "probe"
    probe.touch()
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.unlink()
    tool = Immutable()
    yield tool
    tool.thaw()


def mount(*args: str) -> subprocess.CompletedProcess[str]:
    """Run mount(8) (skipping the test without root or the tool)."""
    needs_root()
    if shutil.which("mount") is None:
        pytest.skip("mount is not installed")
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted at the end."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = mount("-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(disk))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill_up(disk: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ledgers"
    directory.mkdir()
    return directory


@pytest.fixture
def ledger_path(ledger_dir: Path) -> Path:
    return ledger_dir / "auctions.sqlite3"


# --- the file made immutable or read-only ------------------------------------------


@own_server
def test_immutable_ledger_holds_results_until_writable(
    immutable: Immutable, start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    immutable.freeze(ledger_path, *side_files(ledger_path))
    clients = last_auction(server, connect, held=True)
    immutable.thaw()
    assert results_out(clients) < 2 * 1.0 + 1  # the longest retry interval is 1 s
    assert items(ledger_path) == ["Lamp", "Vase"]
    assert server.proc.poll() is None
    assert query_ok(ledger_path)


@own_server
def test_read_only_directory_holds_results_until_writable(
    start_server: Start, connect: Connect, ledger_dir: Path, ledger_path: Path
) -> None:
    """A read-only bind mount over the ledger's directory, made while the
    server runs: the file it has open stays writable, but nothing new can be
    made there (a rollback journal, say)."""
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    if mount("--bind", str(ledger_dir), str(ledger_dir)).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        done = mount("-o", "remount,bind,ro", str(ledger_dir))
        assert done.returncode == 0, done.stderr
        clients = last_auction(server, connect, held=True)
    finally:
        subprocess.run(["umount", "-l", str(ledger_dir)], check=False)
    results_out(clients)
    assert items(ledger_path) == ["Lamp", "Vase"]
    assert server.proc.poll() is None


# --- side files ----------------------------------------------------------------------


@own_server
def test_truncated_side_files_do_not_crash_the_server(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    """SQLite maps WAL's -shm file into memory: truncated, the next commit
    would die of SIGBUS. No side file may exist between commits."""
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    for side in side_files(ledger_path):
        os.truncate(side, 0)
    seller = open_seller(connect, server.port, b"1 100 1 Vase")
    bid(buyers_join(connect, server.port, 1), [300])
    seller.expect(b"SOLD 300 Vase")
    assert server.proc.poll() is None
    assert items(ledger_path) == ["Lamp", "Vase"]
    assert side_files(ledger_path) == []


@own_server
def test_deleting_side_files_then_kill_9_loses_nothing_committed(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)  # told, so committed
    for side in side_files(ledger_path):
        side.unlink()
    server.proc.kill()
    assert server.wait_exit() == -signal.SIGKILL
    assert items(ledger_path) == ["Lamp"]
    assert query_ok(ledger_path)


# --- the path no longer names the open file --------------------------------------------


@own_server
def test_unlinked_ledger_is_noticed_and_a_new_one_takes_the_results(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    ledger_path.unlink()
    for side in side_files(ledger_path):
        side.unlink()
    clients = last_auction(server, connect, held=False)
    line = server.wait_for(FAILED, stderr=True)
    assert str(ledger_path) in line and "deleted" in line
    results_out(clients)
    assert items(ledger_path) == ["Vase"]  # "Lamp" went with the deleted file
    assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o600


@own_server
def test_removed_directory_holds_results_until_it_is_back(
    start_server: Start, connect: Connect, ledger_dir: Path, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    shutil.rmtree(ledger_dir)
    clients = last_auction(server, connect, held=True)
    # Retried, and still impossible while the directory is missing:
    server.wait_for(f"{ledger_dir} does not exist", stderr=True)
    ledger_dir.mkdir()
    results_out(clients)
    assert items(ledger_path) == ["Vase"]


@own_server
def test_path_replaced_by_a_directory_holds_results_until_it_is_free(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    ledger_path.unlink()
    ledger_path.mkdir()
    clients = last_auction(server, connect, held=True)
    server.wait_for("is a directory", stderr=True)
    ledger_path.rmdir()
    results_out(clients)
    assert items(ledger_path) == ["Vase"]


@own_server
def test_path_replaced_by_another_ledger_records_there(
    start_server: Start, connect: Connect, ledger_dir: Path, ledger_path: Path
) -> None:
    """A ledger moved into place (restored from a backup, say) is opened and
    the next auction recorded in it, after the ones it holds."""
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    backup = ledger_dir / "backup.sqlite3"
    shutil.copyfile(ledger_path, backup)
    os.replace(backup, ledger_path)
    clients = last_auction(server, connect, held=False)
    results_out(clients)
    assert items(ledger_path) == ["Lamp", "Vase"]


# --- start-up: not a regular file, file modes ------------------------------------------


def _not_regular(kind: str, tmp_path: Path, stack: contextlib.ExitStack) -> str:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = stack.enter_context(socket.socket(socket.AF_UNIX))
        sock.bind(str(path))
    elif kind == "symlink-to-fifo":
        os.mkfifo(tmp_path / "fifo")
        path.symlink_to(tmp_path / "fifo")
    else:
        return os.devnull
    return str(path)


@own_server
@pytest.mark.parametrize("kind", ["fifo", "symlink-to-fifo", "socket", "char-device"])
def test_not_a_regular_file_is_refused_at_once(
    start_server: Start, tmp_path: Path, kind: str
) -> None:
    with contextlib.ExitStack() as stack:
        path = _not_regular(kind, tmp_path, stack)
        began = time.monotonic()
        server = start_server("--ledger", path, ready=False)
        assert server.wait_exit(timeout=5) == 3
        assert time.monotonic() - began < 5
    (line,) = server.errors
    assert line.startswith("auc_server: ledger ") and "not a regular file" in line
    assert server.output == []


@own_server
def test_new_ledger_is_private_whatever_the_umask(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    old = os.umask(0)
    try:
        server = start_server("--ledger", str(ledger_path))
    finally:
        os.umask(old)
    sold_auction(connect, server.port)
    assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o600


# --- what already held: a full disk, a lock held for seconds, history meanwhile ---------


@own_server
def test_full_disk_holds_results_until_space_is_free(
    small_disk: Path, start_server: Start, connect: Connect
) -> None:
    path = small_disk / "auctions.sqlite3"
    server = start_server("--ledger", str(path))
    sold_auction(connect, server.port)
    filler = fill_up(small_disk)
    clients = last_auction(server, connect, held=True)
    filler.unlink()
    results_out(clients)
    assert items(path) == ["Lamp", "Vase"]
    assert query_ok(path)


@own_server
def test_exclusive_lock_for_seconds_holds_results_then_releases_them(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    seller = open_seller(connect, server.port, b"1 100 2 Vase")
    buyers = buyers_join(connect, server.port, 2)
    lock = sqlite3.connect(ledger_path, isolation_level=None, timeout=0)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        bid(buyers, [300, 200])
        server.wait_for("Ledger is busy")
        assert_silent([seller, *buyers], seconds=2.0)
        assert server.proc.poll() is None
        lock.execute("ROLLBACK")
    finally:
        lock.close()
    results_out([seller, *buyers])
    assert items(ledger_path) == ["Lamp", "Vase"]


def run_history(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactor_auction.server", "history", *args],
        capture_output=True, text=True, timeout=WAIT, cwd=ROOT,
    )


@own_server
def test_history_reads_while_the_server_runs(
    start_server: Start, connect: Connect, ledger_path: Path
) -> None:
    server = start_server("--ledger", str(ledger_path))
    sold_auction(connect, server.port)
    for _ in range(3):  # between commits the server holds no lock at all
        done = run_history("--ledger", str(ledger_path))
        assert (done.returncode, done.stderr) == (0, "")
        assert "Lamp" in done.stdout
    seller = open_seller(connect, server.port, b"1 100 1 Vase")
    bid(buyers_join(connect, server.port, 1), [300])
    seller.expect(b"SOLD 300 Vase")
    done = run_history("--ledger", str(ledger_path), "--json")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2
    assert server.proc.poll() is None


# --- Ledger itself, against the same faults ---------------------------------------------


@pytest.fixture
def opened(ledger_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(str(ledger_path))
    yield ledger
    ledger.close()


def test_commits_use_a_rollback_journal_and_leave_no_side_file(
    opened: Ledger, ledger_path: Path
) -> None:
    assert opened._db is not None
    assert opened._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert opened._db.execute("PRAGMA mmap_size").fetchone()[0] == 0
    opened.record(make_record())
    assert side_files(ledger_path) == []
    assert items(ledger_path) == ["WolfPackSword"]


def _crash_in_wal_mode(path: Path) -> None:
    """As an older server left its ledger when killed: one more auction
    committed in the -wal file only, not yet in the database file."""
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL')\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute(\"INSERT INTO auctions SELECT NULL, 'In the WAL', kind, min_price,"
        " buyers_requested, buyers_connected, outcome, reason, winner, winner_address,"
        " highest, price, seller_address, started_at, ended_at FROM auctions\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=WAIT)


def test_a_wal_ledger_left_by_a_crash_is_migrated_on_open(ledger_path: Path) -> None:
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        ledger.record(make_record())
    _crash_in_wal_mode(ledger_path)
    assert [side.name[-4:] for side in side_files(ledger_path)] == ["-shm", "-wal"]
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        assert side_files(ledger_path) == []  # checkpointed into the file
        ledger.record(make_record(item="Lamp"))
    assert items(ledger_path) == ["WolfPackSword", "In the WAL", "Lamp"]
    with contextlib.closing(sqlite3.connect(ledger_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_wal_ledger_open_elsewhere_is_refused_after_the_start_up_wait(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Ledger(str(ledger_path)).close()
    other = sqlite3.connect(ledger_path, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode=WAL")
        other.execute("SELECT count(*) FROM auctions").fetchall()
        monkeypatch.setattr(ledger_mod, "STARTUP_WAIT", 0.1)
        with pytest.raises(LedgerError, match="locked by another program"):
            Ledger(str(ledger_path))
    finally:
        other.close()


def test_a_newer_wal_ledger_is_left_in_wal_mode(ledger_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(ledger_path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="schema version"):
        Ledger(str(ledger_path))
    with contextlib.closing(sqlite3.connect(ledger_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_a_new_ledger_and_its_journal_are_mode_0600(ledger_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        ledger = Ledger(str(ledger_path))
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o600
        ledger.record(make_record())
        db = ledger._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE auctions SET item = 'x'")  # the journal holds the old page
        journal = Path(f"{ledger_path}-journal")
        assert stat.S_IMODE(journal.stat().st_mode) == 0o600
        db.execute("ROLLBACK")
    finally:
        ledger.close()


def test_an_existing_file_keeps_its_mode(ledger_path: Path) -> None:
    ledger_path.touch()
    ledger_path.chmod(0o640)
    with contextlib.closing(Ledger(str(ledger_path))) as ledger:
        ledger.record(make_record())
    assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o640


def test_a_relative_path_is_kept_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with contextlib.closing(Ledger("here.sqlite3")) as ledger:
        assert ledger.path == str(tmp_path / "here.sqlite3")


def test_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.sqlite3"
    link.symlink_to(tmp_path / "nowhere" / "ledger.sqlite3")
    with pytest.raises(LedgerError, match="symbolic link to nothing"):
        Ledger(str(link))


def test_record_after_unlink_raises_then_records_in_a_new_file(
    opened: Ledger, ledger_path: Path
) -> None:
    opened.record(make_record())
    ledger_path.unlink()
    with pytest.raises(LedgerError, match="was deleted") as raised:
        opened.record(make_record(item="Lamp"))
    assert not isinstance(raised.value, LedgerBusy)
    assert not ledger_path.exists()  # nothing was written anywhere
    assert opened.record(make_record(item="Lamp")) == 1
    assert items(ledger_path) == ["Lamp"]
    assert stat.S_IMODE(ledger_path.stat().st_mode) == 0o600


def test_record_while_the_directory_is_gone_raises_until_it_is_back(
    opened: Ledger, ledger_dir: Path, ledger_path: Path
) -> None:
    opened.record(make_record())
    shutil.rmtree(ledger_dir)
    with pytest.raises(LedgerError, match="its directory .* was removed"):
        opened.record(make_record(item="Lamp"))
    with pytest.raises(LedgerError, match="does not exist"):
        opened.record(make_record(item="Lamp"))
    ledger_dir.mkdir()
    opened.record(make_record(item="Lamp"))
    assert items(ledger_path) == ["Lamp"]


def test_record_into_a_ledger_moved_into_place(
    opened: Ledger, ledger_dir: Path, ledger_path: Path
) -> None:
    opened.record(make_record())
    other = ledger_dir / "other.sqlite3"
    with contextlib.closing(Ledger(str(other))) as ledger:
        ledger.record(make_record(item="Clock"))
    os.replace(other, ledger_path)
    with pytest.raises(LedgerError, match="replaced by another file"):
        opened.record(make_record(item="Lamp"))
    opened.record(make_record(item="Lamp"))
    assert items(ledger_path) == ["Clock", "Lamp"]


def test_a_path_lost_during_the_commit_is_caught_before_it(
    opened: Ledger, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last look is taken after the rows are inserted, right before COMMIT."""
    insert = ledger_mod._insert

    def insert_then_lose(db: sqlite3.Connection, *args: object) -> int:
        number = insert(db, *args)  # type: ignore[arg-type]
        ledger_path.unlink()
        return number

    monkeypatch.setattr(ledger_mod, "_insert", insert_then_lose)
    with pytest.raises(LedgerError, match="was deleted"):
        opened.record(make_record())
    monkeypatch.setattr(ledger_mod, "_insert", insert)
    opened.record(make_record(item="Lamp"))
    assert items(ledger_path) == ["Lamp"]


def test_an_immutable_ledger_fails_the_commit_then_recovers(
    immutable: Immutable, opened: Ledger, ledger_path: Path
) -> None:
    opened.record(make_record())
    immutable.freeze(ledger_path)
    for _ in range(2):
        with pytest.raises(LedgerError, match="immutable") as raised:
            opened.record(make_record(item="Lamp"))
        assert not isinstance(raised.value, LedgerBusy)
    # The failed commit left its journal: a reader cannot undo it, and says so.
    with pytest.raises(LedgerError, match="interrupted"):
        history(str(ledger_path))
    immutable.thaw()
    opened.record(make_record(item="Vase"))
    assert items(ledger_path) == ["WolfPackSword", "Vase"]
    assert query_ok(ledger_path)
    assert side_files(ledger_path) == []


def test_a_full_disk_fails_the_commit_with_a_plain_reason(small_disk: Path) -> None:
    path = small_disk / "auctions.sqlite3"
    with contextlib.closing(Ledger(str(path))) as ledger:
        ledger.record(make_record())
        filler = fill_up(small_disk)
        with pytest.raises(LedgerError, match="the disk is full"):
            ledger.record(make_record(item="Lamp"))
        filler.unlink()
        ledger.record(make_record(item="Vase"))
    assert items(path) == ["WolfPackSword", "Vase"]


class _FailingLedger:
    """A ledger whose commits fail with the given reasons, then succeed."""

    path = "/nowhere/ledger.sqlite3"

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        self.tries = 0

    def record(self, record: object) -> int:
        self.tries += 1
        if self.reasons:
            raise LedgerError(self.reasons.pop(0))
        return 1


def test_a_long_outage_is_logged_once_per_reason() -> None:
    """Retried every second for as long as it lasts, a failing commit says
    so once for each new reason, not at every retry."""
    from conftest import RawClient
    from test_reactor import run_until

    from reactor_auction.auction import Auction
    from reactor_auction.events import LogKind
    from reactor_auction.loop import Loop
    from reactor_auction.service import AuctionService

    logged: list[tuple[LogKind, tuple[object, ...]]] = []
    ledger = _FailingLedger(["the disk is full"] * 4 + ["its directory was removed"] * 3)
    loop = Loop()
    service = AuctionService(
        loop, Auction(), lambda kind, args: logged.append((kind, args)),
        ledger=ledger,  # type: ignore[arg-type]
    )
    port = service.listen("127.0.0.1", 0).port
    seller = RawClient(port)
    run_until(loop, lambda: service.connections == 1)
    seller.expect(b"ROLE SELLER", b"REQUEST")
    seller.send(b"1 10 1 Lamp\n")
    run_until(loop, lambda: any(kind is LogKind.REQUEST_ACCEPTED for kind, _ in logged))
    buyer = RawClient(port)
    run_until(loop, lambda: service.connections == 2)
    buyer.send(b"20\n")  # read once bidding starts: the one buyer completes the count
    run_until(loop, lambda: service.connections == 0)
    assert ledger.tries == 8
    failures = [str(args[0]) for kind, args in logged if kind is LogKind.LEDGER_FAILED]
    assert failures == ["the disk is full", "its directory was removed"]
    assert _lines_to_eof(buyer)[-2:] == [b"ACCEPTED", b"WON 20 Lamp"]
    assert _lines_to_eof(seller)[-2:] == [b"START", b"SOLD 20 Lamp"]
    loop.close()


def _lines_to_eof(client: object) -> list[bytes]:
    """Return the lines a RawClient receives until the server closes."""
    lines = []
    while True:
        try:
            lines.append(client.line())  # type: ignore[attr-defined]
        except EOFError:
            return lines
