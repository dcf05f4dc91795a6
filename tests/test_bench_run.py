"""The benchmark runner as a newcomer meets it: a missing optional package
(uvloop, matplotlib) costs one line and its own part of the run, never the
rest; results and plots go under bench/results/ (ignored by git) unless an
option names another path; the core count is the machine's; a server or
scenario left out is reported as not run, never as failed.

Each test runs the smoke profile on one or two servers, so it takes seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402


def test_left_out_servers_and_scenarios_are_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run.main(["--smoke", "--servers", "reactor", "--scenarios", "idle",
                       "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    targets = printed.out.split("Targets (docs/PERFORMANCE.md):\n")[1].split("\n\n")[0]
    assert targets.splitlines() == [
        "- rate: at least 1.5x asyncio, ahead of uvloop: not run (rate was not run)",
        "- storm: more BUSY/s than uvloop, lower p99: not run (storm was not run)",
        "- big: no listen-queue drops, time at most asyncio's: not run (big was not run)",
        "- idle: RSS at most 0.6x asyncio's: not run (idle was not run on asyncio)",
        "- scale: 40 buyers correct, time per buyer within 1.3x of 10's: not run "
        "(scale was not run)",
    ]
    assert "no ratios: asyncio was not run" in printed.out


def _record(server: str, scenario: str, ok: bool, **metrics: float) -> dict[str, Any]:
    return {"server": server, "scenario": scenario, "params": {}, "ok": ok,
            "metrics": metrics if ok else {}, "errors": [] if ok else ["broken"]}


def test_failed_is_told_apart_from_not_run() -> None:
    runs = [
        _record("reactor", "idle", True, rss_mb=10.0, kb_per_buyer=1.0),
        _record("asyncio", "idle", False),
        _record("reactor", "big", False),
        _record("asyncio", "big", False),
    ]
    med = run.medians(runs)
    lines = run.table(med, ["reactor", "asyncio", "uvloop"], run.ran(runs)).splitlines()
    assert "| idle | rss_mb [MiB], lower is better | 10.0 | FAILED | not run |" in lines
    assert "| big | time_s [s], lower is better | FAILED | FAILED | not run |" in lines
    verdicts = run.targets(med, runs, [10, 40])
    assert "- idle: RSS at most 0.6x asyncio's: **n/a** (no correct run of idle on asyncio)" \
        in verdicts
    assert "- big: no listen-queue drops, time at most asyncio's: **n/a** " \
        "(no correct run of big on reactor)" in verdicts
    assert "- rate: at least 1.5x asyncio, ahead of uvloop: not run (rate was not run)" \
        in verdicts
