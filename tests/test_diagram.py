"""The state diagrams in README.md and docs/PROTOCOL.md are the ones
tools/diagram.py draws from the machine's transition table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reactor_auction.auction import TRANSITIONS  # noqa: E402
from reactor_auction.events import State  # noqa: E402
from tools import diagram  # noqa: E402


@pytest.mark.parametrize("path", diagram.DOCUMENTS, ids=lambda path: path.name)
def test_document_holds_the_diagram_of_the_table(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert diagram.with_diagram(text, diagram.mermaid()) == text, (
        f"{path.name} is stale: run python3 tools/diagram.py"
    )


def test_check_mode_agrees() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "diagram.py"), "--check"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_every_state_and_every_target_of_the_table_is_drawn() -> None:
    drawn = diagram.mermaid()
    for state in State:
        assert f'state "{state.value}" as {state.value.replace("-", "_")}' in drawn
    for (state, _, _), entry in TRANSITIONS.items():
        for target in entry.targets:
            source, sink = (s.value.replace("-", "_") for s in (state, target))
            assert f"    {source} --> {sink}: " in drawn


def test_a_stale_diagram_is_replaced_and_the_rest_kept() -> None:
    stale = f"before\n{diagram.BEGIN}\nold diagram\n{diagram.END}\nafter\n"
    assert diagram.with_diagram(stale, "NEW") == (
        f"before\n{diagram.BEGIN}\nNEW\n{diagram.END}\nafter\n"
    )
    for broken in ("no markers", f"{diagram.END}\n{diagram.BEGIN}\n", diagram.BEGIN * 2):
        with pytest.raises(ValueError):
            diagram.with_diagram(broken, "NEW")
