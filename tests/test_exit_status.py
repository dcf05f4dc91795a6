"""The exit statuses README.md documents are the ones the commands return
(``session.ExitStatus`` for the client, ``exits.ServerExit`` for the server),
with the meanings their ``--help`` prints."""

from __future__ import annotations

from pathlib import Path

from reactor_auction import client, server, text
from reactor_auction.exits import SERVER_EXIT_TEXT, ServerExit
from reactor_auction.session import ExitStatus

README = Path(__file__).resolve().parent.parent / "README.md"


def table_after(document: str, marker: str) -> list[tuple[int, str]]:
    """Return the rows (status, meaning) of the first ``| status | meaning |``
    table after the line containing ``marker``, backquotes removed."""
    lines = document.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    head = next(i for i in range(start, len(lines)) if lines[i] == "| status | meaning |")
    rows = []
    for line in lines[head + 2 :]:
        if not line.startswith("|"):
            break
        status, meaning = (cell.strip().replace("`", "") for cell in line.strip("|").split("|"))
        rows.append((int(status), meaning))
    return rows


def test_readme_lists_the_client_exit_statuses() -> None:
    rows = table_after(README.read_text(), "The client's exit status")
    assert rows == [(status.value, text.CLIENT_EXIT_TEXT[status]) for status in ExitStatus]


def test_readme_lists_the_server_exit_statuses() -> None:
    rows = table_after(README.read_text(), "The server's exit status")
    assert rows == [(status.value, SERVER_EXIT_TEXT[status]) for status in ServerExit]


def test_every_status_has_a_meaning_and_its_own_number() -> None:
    assert set(text.CLIENT_EXIT_TEXT) == set(ExitStatus)
    assert set(SERVER_EXIT_TEXT) == set(ServerExit)
    for statuses in (ExitStatus, ServerExit):
        assert len({int(status) for status in statuses}) == len(statuses)


def test_help_epilogs_list_every_status() -> None:
    for parser, rows in (
        (server.build_parser(), [(s.value, SERVER_EXIT_TEXT[s]) for s in ServerExit]),
        (client.build_parser(), [(s.value, text.CLIENT_EXIT_TEXT[s]) for s in ExitStatus]),
    ):
        epilog = parser.format_help().split("exit status:\n", 1)[1]
        assert epilog.splitlines() == [f"  {status:>3}  {meaning}" for status, meaning in rows]
