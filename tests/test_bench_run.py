"""The benchmark runner as a newcomer meets it: a missing optional package
(uvloop, matplotlib) costs one line and its own part of the run, never the
rest; results and plots go under bench/results/ (ignored by git) unless an
option names another path; the core count is the machine's; a server or
scenario left out is reported as not run, never as failed.

Each test runs the smoke profile on one or two servers, so it takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402

INSTALL = "python3 -m pip install -r bench/requirements.txt"
#: The git tests need git and a checkout (not an unpacked sdist).
GIT = shutil.which("git") is not None and (ROOT / ".git").exists()


def _hide(tmp_path: Path, *packages: str) -> dict[str, str]:
    """Return an environment in which ``packages`` cannot be imported: a
    directory first on PYTHONPATH holds a package of each name that raises
    ModuleNotFoundError, as a missing one does, in every process started."""
    shadow = tmp_path / "hidden"
    for name in packages:
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError({f'No module named {name!r}'!r}, name={name!r})\n")
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)


def _bench(args: list[str], env: dict[str, str], cwd: Path = ROOT,
           script: Path = ROOT / "bench" / "run.py") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_without_uvloop_or_matplotlib_one_line_each_and_the_rest_runs(tmp_path: Path) -> None:
    env = _hide(tmp_path, "uvloop", "matplotlib")
    out, plot = tmp_path / "r.json", tmp_path / "scale.png"
    proc = _bench(["--smoke", "--servers", "reactor,uvloop", "--scenarios", "scale",
                   "--json", str(out), "--plot", str(plot)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = [line for line in proc.stderr.splitlines() if "not installed" in line]
    assert said == [
        f"uvloop is not installed, so the uvloop server is not run (install: {INSTALL})",
        "matplotlib is not installed, so the scale plot is written as SVG, not PNG "
        f"(install: {INSTALL})",
    ]
    assert "Traceback" not in proc.stderr and "FAILED" not in proc.stdout + proc.stderr
    assert "| scale@40 | time_s [s], lower is better | " in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| scale@")]
    assert rows and all(row.endswith(" | not run |") for row in rows)
    data = json.loads(out.read_text())
    assert {r["server"] for r in data["runs"]} == {"reactor"}
    assert data["meta"]["not_run"] == ["uvloop"]
    assert plot.with_suffix(".svg").stat().st_size > 0 and not plot.exists()


def test_uvloop_baseline_alone_says_what_is_missing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "baselines" / "uvloop_server.py"), "0"],
        env=_hide(tmp_path, "uvloop"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "uvloop_server.py: uvloop is not installed; install it with "
        f"{INSTALL} (or: python3 -m pip install uvloop)"]


def test_nothing_to_run_when_every_server_asked_for_is_missing(tmp_path: Path) -> None:
    proc = _bench(["--smoke", "--servers", "uvloop", "--scenarios", "scale"],
                  _hide(tmp_path, "uvloop", "matplotlib"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"uvloop is not installed, so the uvloop server is not run (install: {INSTALL})",
        "Nothing to run.",
    ]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(not GIT, reason="needs git and a git checkout")
def test_a_run_changes_no_tracked_file(tmp_path: Path) -> None:
    # A copy of the checkout as it is now (tracked files, working-tree content),
    # committed, so git status shows whatever the run writes outside ignored paths.
    repo = tmp_path / "repo"
    for name in _git(ROOT, "ls-files", "-z").split("\0"):
        if name and (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost",
         "-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", "copy")
    proc = _bench(["--smoke", "--servers", "reactor", "--scenarios", "scale"],
                  dict(os.environ), cwd=repo, script=repo / "bench" / "run.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _git(repo, "status", "--porcelain") == ""
    written = sorted(p.name for p in (repo / "bench" / "results").iterdir())
    assert len(written) == 2 and written[0].endswith("-smoke-scale.png" if run.importable(
        "matplotlib") else "-smoke-scale.svg") and written[1].endswith("-smoke.json")
    assert f"Plot: {repo / 'bench' / 'results' / written[0]}" in proc.stdout


@pytest.mark.parametrize("profile", ["full", "quick", "smoke"])
def test_default_outputs_are_ignored_by_git(profile: str) -> None:
    results = ROOT / "bench" / "results"
    out, plot = run.output_paths(None, None, profile)
    assert out.parent == results and plot.parent == results
    assert out.name.endswith(f"-{profile}.json") and plot.name.endswith(f"-{profile}-scale.png")
    if GIT:
        ignored = _git(ROOT, "check-ignore", str(out), str(plot))  # raises if neither is
        assert ignored.splitlines() == [str(out), str(plot)]
    asked = Path("docs") / "bench-scale.png"
    assert run.output_paths(None, asked, profile)[1] == asked


def test_cores_are_the_machines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert run.available_cores() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    out = tmp_path / "r.json"
    status = run.main(["--smoke", "--servers", "reactor", "--scenarios", "idle", "--poll",
                       "--json", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert ("--poll: only 1 core is available, so the polling load generator takes its "
            "time from the server") in printed.err.splitlines()
    assert printed.out.splitlines()[-1].startswith("Took ")
    assert " on 1 core of the machine's 8; load average " in printed.out
    meta = json.loads(out.read_text())["meta"]
    assert (meta["cpus"], meta["cpus_available"]) == (8, 1)
    assert "2-core" not in Path(run.__file__).read_text()


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
