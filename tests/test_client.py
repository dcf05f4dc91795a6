"""``auc_client`` end to end: a real server, real clients in pseudo-terminals
(pexpect) or on pipes. Each screen of docs/TRANSCRIPTS.md is compared whole,
line for line, with what the client printed (the terminal echoes what the
person types on the line after the prompt, as in the transcript).

Synchronisation is on text: a prompt the client shows, a line the server
prints. Nothing sleeps.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import CLIENT_BIN, WAIT, ServerProcess, free_port

from reactor_auction import client
from reactor_auction.loop import Loop
from reactor_auction.session import ExitStatus

CONNECTED = "Connected to the Auctioneer server.\n\n"
OVER = "Disconnecting from the Auctioneer server. Auction is over!\n"
BUSY = CONNECTED + "Server is busy. Try to connect again later.\n"
REQUEST_PROMPT = "Please submit auction request:"
BID_PROMPT = "Please submit your bid:"
GOODBYE = "Interrupted: leaving the Auctioneer server. Goodbye!"
BYE = "Disconnecting from the Auctioneer server.\n"
SELLER_HEAD = CONNECTED + "Your role is: [Seller]\n" + REQUEST_PROMPT + "\n"
WAITING_HEAD = (
    CONNECTED
    + "Your role is: [Buyer]\n"
    + "The Auctioneer is still waiting for other Buyers to connect...\n"
)
SERVER = ("--no-ledger", "--request-timeout", "30", "--bid-timeout", "30")


class Person:
    """One ``auc_client`` in a pseudo-terminal; everything it prints is kept."""

    def __init__(self, port: int, *args: str, host: str = "127.0.0.1") -> None:
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable, [str(CLIENT_BIN), host, str(port), *args],
            encoding="utf-8", timeout=WAIT,
        )
        self.child.logfile_read = self.log

    def sees(self, text: str) -> None:
        """Wait until the client has printed ``text``."""
        self.child.expect_exact(text)

    def types(self, line: str) -> None:
        self.child.sendline(line)

    def finish(self) -> tuple[str, int | None]:
        """Wait for the client to exit; return (all it printed, exit status)."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.log.getvalue().replace("\r\n", "\n"), self.child.exitstatus


@pytest.fixture
def person() -> Iterator[Callable[..., Person]]:
    """Return ``person(port, *args)`` -> Person; all are ended after the test."""
    people: list[Person] = []

    def make(port: int, *args: str, host: str = "127.0.0.1") -> Person:
        people.append(Person(port, *args, host=host))
        return people[-1]

    yield make
    for someone in people:
        someone.child.close(force=True)


def seller_started(person: Callable[..., Person], port: int, request: str) -> Person:
    """Return a seller whose request was accepted."""
    seller = person(port)
    seller.sees(REQUEST_PROMPT)
    seller.types(request)
    seller.sees("Server: Auction start.")
    return seller


def waiting_for_buyers(person: Callable[..., Person], port: int) -> tuple[Person, Person]:
    """Return (seller, buyer 1) of an auction that waits for a second buyer."""
    seller = seller_started(person, port, "1 10 2 Cup")
    buyer = person(port)
    buyer.sees("still waiting")
    return seller, buyer


# --- the screens of docs/TRANSCRIPTS.md ----------------------------------------------


def test_seed_auction_seller_sold_winner_loser_invalid_and_typed_early(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = person(server.port)
    seller.sees(REQUEST_PROMPT)
    seller.types("some wrong input")
    seller.sees("Server: Invalid auction request!\r\n" + REQUEST_PROMPT)
    seller.types("2 100 3 WolfPackSword")
    seller.sees("Server: Auction start.")

    first = person(server.port)
    first.sees("still waiting for other Buyers to connect...")
    second = person(server.port)
    second.sees("still waiting for other Buyers to connect...")
    second.types("150")  # too early
    second.sees("Server: Bidding has not started yet. Please wait.")
    third = person(server.port)
    for buyer in (first, second, third):
        buyer.sees(BID_PROMPT)

    first.types("some wrong bid")
    first.sees("Server: Invalid bid. Please submit a positive integer!\r\n" + BID_PROMPT)
    first.types("120")
    first.sees("Server: Bid received. Please wait...")
    second.types("150")
    second.sees("Server: Bid received. Please wait...")
    third.types("180")

    assert seller.finish() == (
        CONNECTED
        + "Your role is: [Seller]\n"
        "Please submit auction request:\n"
        "some wrong input\n"
        "Server: Invalid auction request!\n"
        "Please submit auction request:\n"
        "2 100 3 WolfPackSword\n"
        "Server: Auction start.\n"
        "\n"
        "Auction finished!\n"
        "Success! Your item WolfPackSword has been sold for $150.\n" + OVER,
        0,
    )
    assert first.finish() == (
        CONNECTED
        + "Your role is: [Buyer]\n"
        "The Auctioneer is still waiting for other Buyers to connect...\n"
        "\n"
        "The bidding has started!\n"
        "Please submit your bid:\n"
        "some wrong bid\n"
        "Server: Invalid bid. Please submit a positive integer!\n"
        "Please submit your bid:\n"
        "120\n"
        "Server: Bid received. Please wait...\n"
        "\n"
        "Server: Auction finished!\n"
        "Unfortunately you did not win in the last round.\n" + OVER,
        0,
    )
    assert second.finish() == (
        CONNECTED
        + "Your role is: [Buyer]\n"
        "The Auctioneer is still waiting for other Buyers to connect...\n"
        "150\n"
        "Server: Bidding has not started yet. Please wait.\n"
        "\n"
        "The bidding has started!\n"
        "Please submit your bid:\n"
        "150\n"
        "Server: Bid received. Please wait...\n"
        "\n"
        "Server: Auction finished!\n"
        "Unfortunately you did not win in the last round.\n" + OVER,
        0,
    )
    # The buyer completing the count is not told the server is still waiting.
    assert third.finish() == (
        CONNECTED
        + "Your role is: [Buyer]\n"
        "\n"
        "The bidding has started!\n"
        "Please submit your bid:\n"
        "180\n"
        "Server: Bid received. Please wait...\n"
        "\n"
        "Server: Auction finished!\n"
        "You won the item 'WolfPackSword'! Your payment due is $150\n" + OVER,
        0,
    )
    server.wait_for(">> Item sold! The highest bid is $180. The actual payment is $150")


def test_not_sold(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = seller_started(person, server.port, "1 100 2 Old Lamp")
    buyers = [person(server.port)]
    buyers[0].sees("still waiting")  # buyer 1 before buyer 2 connects
    buyers.append(person(server.port))
    for buyer, bid in zip(buyers, ("60", "80"), strict=True):
        buyer.sees(BID_PROMPT)
        buyer.types(bid)
    unsold = "Unfortunately, {} was not sold as all bids were below the minimum price.\n"
    assert seller.finish() == (
        CONNECTED
        + "Your role is: [Seller]\n"
        "Please submit auction request:\n"
        "1 100 2 Old Lamp\n"
        "Server: Auction start.\n"
        "\n"
        "Auction finished!\n" + unsold.format("your item") + OVER,
        0,
    )
    for buyer, head, bid in zip(
        buyers, (WAITING_HEAD, CONNECTED + "Your role is: [Buyer]\n"), ("60", "80"), strict=True
    ):
        assert buyer.finish() == (
            head
            + "\n"
            "The bidding has started!\n"
            "Please submit your bid:\n"
            f"{bid}\n"
            "Server: Bid received. Please wait...\n"
            "\n"
            "Server: Auction finished!\n" + unsold.format("the item") + OVER,
            0,
        )


def test_busy_while_the_seller_composes(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    person(server.port).sees(REQUEST_PROMPT)
    assert person(server.port).finish() == (BUSY, ExitStatus.BUSY)


def test_busy_while_bidding(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = seller_started(person, server.port, "1 10 1 Cup")
    buyer = person(server.port)
    buyer.sees(BID_PROMPT)
    assert person(server.port).finish() == (BUSY, ExitStatus.BUSY)
    buyer.types("10")
    assert seller.finish()[1] == 0
    assert buyer.finish()[1] == 0


def test_busy_while_finishing(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person], tmp_path: Path
) -> None:
    ledger = tmp_path / "locked.sqlite3"
    server = start_server("--ledger", str(ledger))
    seller = seller_started(person, server.port, "1 10 1 Cup")
    buyer = person(server.port)
    buyer.sees(BID_PROMPT)
    # Another writer holds the ledger: the result waits in `finishing`.
    db = sqlite3.connect(ledger, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        buyer.types("10")
        server.wait_for("Ledger is busy")
        assert person(server.port).finish() == (BUSY, ExitStatus.BUSY)
        db.execute("ROLLBACK")
    finally:
        db.close()
    assert seller.finish()[0].endswith("Success! Your item Cup has been sold for $10.\n" + OVER)
    assert buyer.finish()[0].endswith("Your payment due is $10\n" + OVER)


# --- everything else: one or two sentences and an exit status ---------------------------


def test_seller_leaving_with_ctrl_c_cancels_for_the_waiting_buyers(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller, buyer = waiting_for_buyers(person, server.port)
    seller.child.sendintr()
    out, status = seller.finish()
    # "^C" is the terminal's echo of the key.
    assert out.endswith("Server: Auction start.\n^C\n" + GOODBYE + "\n")
    assert status == ExitStatus.INTERRUPTED
    # A reset, not an end of input: the server sees the seller leave.
    server.wait_for("Seller left while waiting for Buyers.")
    assert buyer.finish() == (
        WAITING_HEAD + "\nServer: Auction cancelled: the Seller left.\n" + BYE,
        ExitStatus.CANCELLED,
    )


def test_server_shutdown_cancels(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller, buyer = waiting_for_buyers(person, server.port)
    server.signal(signal.SIGTERM)
    cancelled = "\nServer: Auction cancelled: the Auctioneer is shutting down.\n" + BYE
    for someone in (seller, buyer):
        out, status = someone.finish()
        assert out.endswith(cancelled) and status == ExitStatus.CANCELLED
    assert server.wait_exit() == 0


def test_request_timeout(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server("--no-ledger", "--request-timeout", "0.5")
    assert person(server.port).finish() == (
        SELLER_HEAD + "\nServer: Time is up: no valid auction request arrived in time.\n" + BYE,
        ExitStatus.TIMED_OUT,
    )


def test_connection_lost(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = seller_started(person, server.port, "1 10 2 Cup")
    server.proc.kill()  # no final line for anyone
    out, status = seller.finish()
    assert out.endswith(
        "Server: Auction start.\n"
        "The connection to the Auctioneer server was lost before the auction was over.\n"
    )
    assert status == ExitStatus.LOST


def test_connection_refused(person: Callable[..., Person]) -> None:
    port = free_port()  # nothing listens there
    assert person(port).finish() == (
        f"Could not connect to the Auctioneer server at 127.0.0.1:{port}: "
        "connection refused. Is it running?\n",
        ExitStatus.CANNOT_CONNECT,
    )


def test_connect_timeout(person: Callable[..., Person]) -> None:
    # A listener whose accept queue is full: Linux drops further SYNs, so
    # connecting hangs until the client gives up.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            assert person(port, "--connect-timeout", "0.3").finish() == (
                f"Could not connect to the Auctioneer server at 127.0.0.1:{port} "
                "within 0.3 seconds.\n",
                ExitStatus.CANNOT_CONNECT,
            )
        finally:
            for filler in fillers:
                filler.close()


def test_unknown_host(person: Callable[..., Person]) -> None:
    assert person(4242, host="no-such-host.invalid").finish() == (
        "Could not connect to the Auctioneer server: unknown host 'no-such-host.invalid'.\n",
        ExitStatus.CANNOT_CONNECT,
    )


def test_ctrl_c_at_the_prompt(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = person(server.port)
    seller.sees(REQUEST_PROMPT)
    seller.child.sendintr()
    assert seller.finish() == (SELLER_HEAD + "^C\n" + GOODBYE + "\n", ExitStatus.INTERRUPTED)
    server.wait_for("left before sending an auction request")


def test_ctrl_d_leaves_while_an_answer_is_needed(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = person(server.port)
    seller.sees(REQUEST_PROMPT)
    seller.child.sendeof()
    assert seller.finish() == (
        SELLER_HEAD + "End of input: leaving the auction before it is over.\n",
        ExitStatus.END_OF_INPUT,
    )
    server.wait_for("left before sending an auction request")
    # The place is free again: the next client is the seller.
    person(server.port).sees("Your role is: [Seller]")


def test_ctrl_d_is_ignored_once_nothing_more_is_needed(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = seller_started(person, server.port, "1 10 1 Cup")
    seller.child.sendeof()  # request accepted: nothing more to say
    buyer = person(server.port)
    buyer.sees(BID_PROMPT)
    buyer.types("12")
    out, status = seller.finish()
    assert out.endswith("Success! Your item Cup has been sold for $12.\n" + OVER)
    assert status == 0
    out, status = buyer.finish()
    assert out.endswith("You won the item 'Cup'! Your payment due is $12\n" + OVER)
    assert status == 0


def test_retry_while_busy_until_a_place_is_free(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    seller = person(server.port)
    seller.sees(REQUEST_PROMPT)
    buyer = person(server.port, "--retry", "6")
    buyer.sees("Trying again in 0.2 seconds (retry 1 of 6)...")
    seller.types("1 10 1 Cup")
    buyer.sees(BID_PROMPT)  # a later attempt found the auction waiting for buyers
    buyer.types("10")
    out, status = buyer.finish()
    assert out.startswith(BUSY + "Trying again in 0.2 seconds (retry 1 of 6)...\n" + CONNECTED)
    assert out.endswith(
        CONNECTED
        + "Your role is: [Buyer]\n\nThe bidding has started!\n"
        + BID_PROMPT
        + "\n10\nServer: Bid received. Please wait...\n\nServer: Auction finished!\n"
        "You won the item 'Cup'! Your payment due is $10\n" + OVER
    )
    assert status == 0


def test_retry_gives_up(
    start_server: Callable[..., ServerProcess], person: Callable[..., Person]
) -> None:
    server = start_server(*SERVER)
    person(server.port).sees(REQUEST_PROMPT)
    assert person(server.port, "--retry", "2").finish() == (
        BUSY
        + "Trying again in 0.2 seconds (retry 1 of 2)...\n"
        + BUSY
        + "Trying again in 0.4 seconds (retry 2 of 2)...\n"
        + BUSY,
        ExitStatus.BUSY,
    )


# --- scripted: standard input is not a terminal ----------------------------------------


def scripted(port: int, stdin: str | Path | None) -> subprocess.Popen[str]:
    """Start a client whose standard input is ``stdin`` (text on a pipe, a file,
    or /dev/null for None)."""
    argv = [sys.executable, str(CLIENT_BIN), "127.0.0.1", str(port)]
    if isinstance(stdin, Path):
        with stdin.open() as source:
            return subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE, text=True)
    if stdin is None:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


def result(proc: subprocess.Popen[str]) -> tuple[str, int]:
    """Wait for a scripted client; return (its standard output, its exit status)."""
    status = proc.wait(WAIT)
    assert proc.stdout is not None
    return proc.stdout.read(), status


def test_scripted_auction_on_pipes(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(*SERVER)
    seller = scripted(server.port, "some wrong input\n2 100 3 Sword\n")
    server.wait_for("Now waiting for Buyers")
    # Their answers are on standard input already; nothing is read before BID,
    # so no NOTYET.
    first = scripted(server.port, "abc\n120\n")
    server.wait_for("Buyer 1 is connected")
    second = scripted(server.port, "150\n")
    server.wait_for("Buyer 2 is connected")
    third = scripted(server.port, "180")  # a last line without its newline counts
    assert result(seller) == (
        CONNECTED
        + "Your role is: [Seller]\n"
        "Please submit auction request:\n"
        "Server: Invalid auction request!\n"
        "Please submit auction request:\n"
        "Server: Auction start.\n"
        "\n"
        "Auction finished!\n"
        "Success! Your item Sword has been sold for $150.\n" + OVER,
        0,
    )
    started = "\nThe bidding has started!\n" + BID_PROMPT + "\n"
    received = "Server: Bid received. Please wait...\n\nServer: Auction finished!\n"
    lost = "Unfortunately you did not win in the last round.\n" + OVER
    assert result(first) == (
        WAITING_HEAD + started
        + "Server: Invalid bid. Please submit a positive integer!\n"
        + BID_PROMPT + "\n" + received + lost,
        0,
    )
    assert result(second) == (
        WAITING_HEAD + started + received + lost, 0
    )
    assert result(third) == (
        CONNECTED + "Your role is: [Buyer]\n" + started + received
        + "You won the item 'Sword'! Your payment due is $150\n" + OVER,
        0,
    )


def test_scripted_from_a_file(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(*SERVER)
    answers = tmp_path / "answers.txt"
    answers.write_text("1 10 1 Cup\n")
    seller = scripted(server.port, answers)  # a regular file: not pollable, read directly
    server.wait_for("Now waiting for Buyers")
    buyer = scripted(server.port, "11\n")
    assert result(seller)[0].endswith("Success! Your item Cup has been sold for $11.\n" + OVER)
    assert result(buyer)[1] == 0


def test_scripted_input_ends_before_an_answer(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(*SERVER)
    for stdin in (None, "bad request\n"):
        proc = scripted(server.port, stdin)
        out, status = result(proc)
        assert out.endswith(
            REQUEST_PROMPT + "\nEnd of input: leaving the auction before it is over.\n"
        )
        assert status == ExitStatus.END_OF_INPUT
    server.wait_for("left before sending an auction request", count=2)


def test_protocol_error_from_a_strange_server() -> None:
    """An unknown line is reported, never a crash; the client leaves with a reset."""
    seen: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(WAIT)
                conn.sendall(b"ROLE SELLER\nHELLO there\n")
                try:
                    seen.append(conn.recv(100))
                except OSError as exc:
                    seen.append(type(exc))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        out, status = result(scripted(port, "1 10 1 Cup\n"))
        thread.join(WAIT)
    assert out == (
        CONNECTED
        + "Your role is: [Seller]\n"
        + "Protocol error: unknown server message: 'HELLO there'.\n"
        + BYE
    )
    assert status == ExitStatus.PROTOCOL_ERROR
    assert seen == [ConnectionResetError]


def test_a_line_typed_before_leaving_still_reaches_the_server() -> None:
    """The user types 150 and Ctrl-D without Enter: the line still counts and
    is written, and the client leaves with a reset in the same turn of its
    loop. The line must reach the server before the reset."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        typed, typing = os.pipe()
        loop = Loop()
        user = client.Client(loop, "127.0.0.1", port, interactive=True, stdin_fd=typed)
        assert user.connect()
        conn, _ = listener.accept()
        os.write(typing, b"150")
        os.close(typing)
        loop.run()
        loop.close()
        os.close(typed)
        received = b""
        with conn:
            conn.settimeout(WAIT)
            try:
                while chunk := conn.recv(100):
                    received += chunk
            except ConnectionResetError:
                pass
    assert received == b"150\n"
    assert user.status == ExitStatus.END_OF_INPUT


# --- the command line -------------------------------------------------------------------


def test_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        client.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for status in ExitStatus:
        assert f" {status.value:>3}  " in out
    assert "--retry N" in out and "--connect-timeout SECONDS" in out


@pytest.mark.parametrize(
    "argv",
    [[], ["localhost"], ["localhost", "port"], ["localhost", "0"], ["h", "1", "--retry", "-1"]],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        client.main(argv)
    assert exit_info.value.code == ExitStatus.USAGE
    assert "usage: auc_client" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        client.main(["--version"])
    assert capsys.readouterr().out.startswith("auc_client ")
