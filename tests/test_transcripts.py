"""docs/TRANSCRIPTS.md is what the programs print: its Seller, Buyer and Busy
screens are what a Session's notices print, its Server screen is what the
server's console prints for the same auction (in memory, tests/pair_tools.py),
and every sentence it quotes is one text.py can word, and the other way round."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from pair_tools import InMemoryAuction
from session_tools import Driver

from reactor_auction import text
from reactor_auction.events import LogKind
from reactor_auction.server import ConsoleLog

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "docs" / "TRANSCRIPTS.md"
CLIENT_SECTIONS = ("Seller", "Buyer", "Busy", "Scripted input", "Everything else")


def section(title: str) -> str:
    """Return the text of the ``## title`` section of docs/TRANSCRIPTS.md."""
    heading = rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)"
    match = re.search(heading, TRANSCRIPTS.read_text(), re.M | re.S)
    assert match is not None, f"no section {title!r}"
    return match.group(1)


def screen(title: str) -> list[str]:
    """Return the lines of the first fenced block of a section."""
    match = re.search(r"^```\n(.*?)^```$", section(title), re.M | re.S)
    assert match is not None, f"no screen in {title!r}"
    return match.group(1).splitlines()


def quoted(title: str) -> list[str]:
    """Return the backquoted spans of a section outside its fenced blocks."""
    prose = re.sub(r"^```\n.*?^```$", "", section(title), flags=re.M | re.S)
    return re.findall(r"`([^`]+)`", prose)


def pattern(template_line: str) -> str:
    """Return a regular expression for one line of a template: its literal
    text, with ``.+?`` wherever a value goes."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template_line):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+?")
    return "".join(parts)


def client_templates() -> list[str]:
    """Return every line the client can print, as templates."""
    templates = [
        *text.CLIENT_TEXT.values(),
        *text.CANCELLED_TEXT.values(),
        *text.SERVER_ERROR_TEXT.values(),
        *text.CLIENT_SHELL_TEXT.values(),
    ]
    return [line for template in templates for line in template.split("\n") if line]


def typed_and_shown(lines: list[str]) -> tuple[list[bytes], list[str]]:
    """Split a screen into what the person typed (``[...]`` lines) and the rest."""
    typed = [line[1:-1].encode() for line in lines if line.startswith("[")]
    return typed, [line for line in lines if not line.startswith("[")]


@pytest.mark.parametrize(
    ("title", "script"),
    [
        (
            "Seller",
            ["ROLE SELLER", "REQUEST", "[", "INVALID request", "REQUEST", "[", "START",
             "SOLD 150 WolfPackSword"],
        ),
        (
            "Buyer",
            ["ROLE BUYER 1", "WAITING 1 3", "BID", "[", "INVALID bid", "BID", "[", "ACCEPTED",
             "LOST WolfPackSword"],
        ),
        ("Busy", ["BUSY"]),
    ],
)
def test_client_screens_are_what_the_session_prints(title: str, script: list[str]) -> None:
    """``script``: server lines, and "[" where the person types the screen's next line."""
    typed, shown = typed_and_shown(screen(title))
    answers = iter(typed)
    client = Driver()
    for step in script:
        if step == "[":
            client.user(next(answers).decode())
        else:
            client.server(step)
    assert client.session.status is not None
    assert client.shown == shown
    assert client.sent == [line + b"\n" for line in typed]


def test_the_server_screen_is_what_the_console_prints(capsys: pytest.CaptureFixture[str]) -> None:
    typed, _ = typed_and_shown(screen("Seller"))
    room = InMemoryAuction()
    room.join(*(line.decode() for line in typed), peer="<ip>:<port>")
    for bid in ("120", "150", "180"):
        room.join(bid, peer="<ip>:<port>")
    console = ConsoleLog()
    console(LogKind.READY, ())
    for log in room.logs:
        console(log.kind, log.args)
    assert capsys.readouterr().out.split("\n") == [*screen("Server"), "", ""]


def test_every_sentence_the_client_prints_is_in_the_transcripts() -> None:
    document = TRANSCRIPTS.read_text()
    missing = [line for line in client_templates() if not re.search(pattern(line), document)]
    assert missing == []


def test_every_sentence_the_transcripts_quote_is_one_the_programs_print() -> None:
    commands = re.compile(r"-|auc_\w+ |[^ ]*$")  # options, command lines, single words
    client = [re.compile(pattern(line)) for line in client_templates()]
    server = [
        re.compile(pattern(line)) for template in text.SERVER_TEXT.values()
        for line in template.split("\n") if line
    ]
    for title, templates in [("Server", server), *((title, client) for title in CLIENT_SECTIONS)]:
        for quote in quoted(title):
            if not commands.match(quote):
                assert any(p.fullmatch(quote) for p in templates), f"{title}: {quote!r}"

