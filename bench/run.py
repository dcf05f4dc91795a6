#!/usr/bin/env python3
"""Run the benchmark: auc_server against asyncio, uvloop and threaded baselines.

    python3 bench/run.py            # full: about 6 minutes (measured on 2 cores)
    python3 bench/run.py --quick    # smaller sizes, shorter runs
    python3 bench/run.py --smoke    # tiny sizes, one round (what the test suite runs)

uvloop and matplotlib are optional (bench/requirements.txt): without uvloop
its server is not run, without matplotlib the plot is SVG; one line says so.

Each server is started on a free port with ``--quiet --no-ledger --max-buyers
20000``, run through one scenario by the load generator (bench/loadgen.py, in
this process), and stopped with SIGTERM (it must exit 0). Servers take turns
(A B C D, A B C D, ...) for three rounds per scenario, so slow drift on a
shared machine hits all of them alike. Prints one progress line per run, then a
table of medians with ratios to the asyncio baseline and the targets of
docs/PERFORMANCE.md (a server or scenario left out is "not run", never
failed); saves every raw measurement as JSON in bench/results/ (ignored by
git) and plots the ``scale`` scenario next to it, or where ``--plot`` says
(``--plot docs/bench-scale.png`` replaces the README's plot). Exit status 0
when every run was correct, 1 otherwise. See docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen  # noqa: E402

PY = sys.executable
SERVERS: dict[str, list[str]] = {
    "reactor": [PY, str(ROOT / "bin" / "auc_server")],
    "asyncio": [PY, str(ROOT / "bench" / "baselines" / "asyncio_server.py")],
    "uvloop": [PY, str(ROOT / "bench" / "baselines" / "uvloop_server.py")],
    "threaded": [PY, str(ROOT / "bench" / "baselines" / "threaded_server.py")],
}
#: The benchmark-only package (bench/requirements.txt) a server needs, by server.
NEEDS: dict[str, str] = {"uvloop": "uvloop"}
SERVER_ARGS = ["--quiet", "--no-ledger", "--max-buyers", "20000"]
#: The one stderr line a healthy --quiet server may print (text.SERVER_TEXT["fd_limit"]).
FD_WARNING = "warning: --max-buyers"
#: Ratios are to this server.
REFERENCE = "asyncio"

#: Scenario parameters per profile; ``scale`` lists buyer counts.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "big": {"n": 2000},
        "rate": {"duration": 5.0},
        "storm": {"clients": 200, "buyers": 10, "duration": 3.0},
        "idle": {"n": 5000},
        "scale": [1000, 2000, 5000, 10000],
    },
    "quick": {
        "big": {"n": 2000},
        "rate": {"duration": 2.0},
        "storm": {"clients": 200, "buyers": 10, "duration": 1.5},
        "idle": {"n": 5000},
        "scale": [1000, 10000],
    },
    "smoke": {
        "big": {"n": 20},
        "rate": {"duration": 0.3},
        "storm": {"clients": 10, "buyers": 3, "duration": 0.3},
        "idle": {"n": 20},
        "scale": [10, 40],
    },
}

#: (case, metric, unit, better) shown in the table; "scale" expands per size.
TABLE: list[tuple[str, str, str, str]] = [
    ("big", "time_s", "s", "lower"),
    ("big", "server_cpu_s", "s", "lower"),
    ("big", "peak_rss_mb", "MiB", "lower"),
    ("big", "listen_drops", "", "lower"),
    ("rate", "auctions_per_s", "/s", "higher"),
    ("rate", "cpu_ms_per_auction", "ms", "lower"),
    ("storm", "busy_per_s", "/s", "higher"),
    ("storm", "p50_ms", "ms", "lower"),
    ("storm", "p99_ms", "ms", "lower"),
    ("idle", "rss_mb", "MiB", "lower"),
    ("idle", "kb_per_buyer", "KiB", "lower"),
    ("scale", "time_s", "s", "lower"),
    ("scale", "us_per_buyer", "µs", "lower"),
    ("scale", "peak_rss_mb", "MiB", "lower"),
]


# --- servers -------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    """True if something listens on ``port`` (read from /proc/net/tcp{,6}): the
    servers run --quiet, so there is no ready line to wait for, and a probe
    connection would become the seller."""
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if cols[1].endswith(suffix) and cols[3] == "0A":  # 0A: LISTEN
                        return True
        except FileNotFoundError:
            continue
    return False


def importable(module: str) -> bool:
    """Return True if ``module`` imports in this interpreter, which is the one
    the servers run on, with the same environment."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def missing(package: str, consequence: str) -> str:
    """Return the one line that says ``package`` is missing, what that means
    and how to install it."""
    requirements = ROOT / "bench" / "requirements.txt"
    if requirements.is_relative_to(Path.cwd()):
        requirements = requirements.relative_to(Path.cwd())
    return (f"{package} is not installed, so {consequence} "
            f"(install: python3 -m pip install -r {requirements})")


class Server:
    """One server process under test."""

    def __init__(self, name: str, port: int, *, python_args: Sequence[str] = ()) -> None:
        """Start server ``name``; ``python_args`` go between the interpreter
        and the script (``-m cProfile -o FILE``). Raises BenchError if it does
        not listen within 30 s."""
        self.name = name
        self.port = port
        self._err = tempfile.TemporaryFile()
        python, script = SERVERS[name]
        self.proc = subprocess.Popen(
            [python, *python_args, script, str(port), *SERVER_ARGS],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err,
        )
        deadline = time.monotonic() + 30
        while not _listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise loadgen.BenchError(f"{name} did not start: {self.stop()[1]}")
            time.sleep(0.01)

    def stop(self) -> tuple[int, str]:
        """SIGTERM, wait; return (exit status, the tail of its stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.seek(0)
        err = self._err.read().decode("utf-8", "replace")[-2000:]
        self._err.close()
        return self.proc.returncode, err


def run_once(server: str, scenario: str, params: dict[str, Any], *,
             poll: bool = False) -> dict[str, Any]:
    """Start ``server``, run one scenario, stop it; return the raw record.
    ``poll``: the load generator polls its selector (see loadgen.Driver)."""
    port = free_port()
    started = time.time()
    try:
        srv = Server(server, port)
    except loadgen.BenchError as exc:
        return {"server": server, "scenario": scenario, "params": params, "metrics": {},
                "errors": [str(exc)], "ok": False, "at": started}
    outcome = loadgen.run_scenario(scenario, ("127.0.0.1", port), srv.proc.pid, poll=poll,
                                   **params)
    status, err = srv.stop()
    # --max-buyers 20000 is capped to the descriptor limit, with a warning;
    # anything else on stderr (--quiet keeps only errors) is a failure.
    unexpected = [line for line in err.splitlines() if line and not line.startswith(FD_WARNING)]
    if status != 0:
        outcome.errors.append(f"exit status {status}; stderr: {err.strip()[-500:]}")
    elif unexpected:
        outcome.errors.append(f"stderr: {' / '.join(unexpected)[-500:]}")
    return {"server": server, "scenario": scenario, "params": params, **outcome.as_dict(),
            "stderr": err, "at": started}


# --- the plan and the summary ----------------------------------------------------------


def case_name(scenario: str, params: dict[str, Any]) -> str:
    """Return the table's name for a run: the scenario, with the size for scale."""
    return f"scale@{params['n']}" if scenario == "scale" else scenario


def plan(profile: dict[str, Any], scenarios: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Return (scenario, params) in running order."""
    cases = []
    for scenario in scenarios:
        if scenario == "scale":
            cases += [("scale", {"n": n}) for n in profile["scale"]]
        else:
            cases.append((scenario, dict(profile[scenario])))
    return cases


def ran(runs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return the (case, server) pairs run, each once, in running order: a
    pair that is absent was not run, whether or not its runs were correct."""
    return list(dict.fromkeys((case_name(r["scenario"], r["params"]), r["server"])
                              for r in runs))


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Return case -> server -> metric -> median over the correct runs."""
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        if not run["ok"]:
            continue
        per = grouped.setdefault(case_name(run["scenario"], run["params"]), {})
        metrics = per.setdefault(run["server"], {})
        for key, value in run["metrics"].items():
            metrics.setdefault(key, []).append(float(value))
    return {
        case: {srv: {k: statistics.median(v) for k, v in m.items()} for srv, m in per.items()}
        for case, per in grouped.items()
    }


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(med: dict[str, dict[str, dict[str, float]]], servers: Sequence[str],
          pairs: Sequence[tuple[str, str]]) -> str:
    """Return a Markdown table of medians, each with its ratio to REFERENCE:
    one row per metric of each case run, one column per server in ``servers``.
    A cell says FAILED when that server ran the case with no correct run, and
    not run when it did not run it."""
    head = ["scenario", "metric", *servers]
    rows = [head, ["---"] * len(head)]
    cases = list(dict.fromkeys(case for case, _ in pairs))
    for case_key, metric, unit, better in TABLE:
        for case in cases:
            if case.split("@")[0] != case_key:
                continue
            per = med.get(case, {})
            if per and not any(metric in per.get(s, {}) for s in servers):
                continue  # none of the correct runs measured it
            ref = per.get(REFERENCE, {}).get(metric)
            cells = []
            for srv in servers:
                value = per.get(srv, {}).get(metric)
                if value is None:
                    cells.append("FAILED" if (case, srv) in pairs else "not run")
                    continue
                cell = _fmt(value)
                if ref and srv != REFERENCE:
                    cell += f" ({value / ref:.2f}x)"
                cells.append(cell)
            label = f"{metric} [{unit}]" if unit else metric
            rows.append([case, f"{label}, {better} is better", *cells])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _get(med: dict[str, Any], case: str, server: str, metric: str) -> float | None:
    value = med.get(case, {}).get(server, {}).get(metric)
    return None if value is None else float(value)


def _not_run(absent: Sequence[tuple[str, str]], pairs: Sequence[tuple[str, str]]) -> str:
    """Return which of the (case, server) pairs in ``absent`` were not run,
    by scenario: "storm was not run", "rate was not run on uvloop"."""
    scenarios = {case.split("@")[0] for case, _ in pairs}
    parts = []
    for scenario in dict.fromkeys(case.split("@")[0] for case, _ in absent):
        if scenario not in scenarios:
            parts.append(f"{scenario} was not run")
            continue
        on = dict.fromkeys(srv for case, srv in absent if case.split("@")[0] == scenario)
        parts.append(f"{scenario} was not run on {', '.join(on)}")
    return "; ".join(parts)


def targets(med: dict[str, Any], runs: list[dict[str, Any]], sizes: Sequence[int]) -> list[str]:
    """Return one line per target (docs/PERFORMANCE.md): MET or MISSED with
    the numbers; not run when a scenario or server it compares was not run;
    n/a when one of them has no correct run. ``sizes`` are the profile's
    scale sizes."""
    pairs = ran(runs)
    lo, hi = min(sizes), max(sizes)
    lines: list[str] = []

    def value(server: str, case: str, metric: str) -> float:
        found = _get(med, case, server, metric)
        if found is None:
            raise LookupError(f"{case} on {server}")
        return found

    def verdict(name: str, needs: Sequence[tuple[str, str]], judge: Any) -> None:
        """``needs``: the (case, server) pairs ``judge()`` compares; it returns
        (met, detail)."""
        absent = [pair for pair in needs if pair not in pairs]
        if absent:
            lines.append(f"- {name}: not run ({_not_run(absent, pairs)})")
            return
        try:
            met, detail = judge()
        except LookupError as failed:
            lines.append(f"- {name}: **n/a** (no correct run of {failed})")
            return
        lines.append(f"- {name}: **{'MET' if met else 'MISSED'}** ({detail})")

    def rate() -> tuple[bool, str]:
        r, a, u = (value(s, "rate", "auctions_per_s") for s in ("reactor", "asyncio", "uvloop"))
        return (r >= 1.5 * a and r > u,
                f"{_fmt(r)}/s: {r / a:.2f}x asyncio ({_fmt(a)}/s), "
                f"{r / u:.2f}x uvloop ({_fmt(u)}/s)")

    def storm() -> tuple[bool, str]:
        rb, ub = value("reactor", "storm", "busy_per_s"), value("uvloop", "storm", "busy_per_s")
        rp, up = value("reactor", "storm", "p99_ms"), value("uvloop", "storm", "p99_ms")
        return (rb > ub and rp < up,
                f"{_fmt(rb)} vs {_fmt(ub)} BUSY/s; p99 {_fmt(rp)} ms vs {_fmt(up)} ms")

    def big() -> tuple[bool, str]:
        rt, at = value("reactor", "big", "time_s"), value("asyncio", "big", "time_s")
        drops = max(run["metrics"].get("listen_drops", 0) for run in runs
                    if run["scenario"] == "big" and run["server"] == "reactor")
        return (drops == 0 and rt <= at,
                f"drops {drops:.0f} (system-wide counter); {_fmt(rt)} s vs asyncio {_fmt(at)} s")

    def idle() -> tuple[bool, str]:
        ri, ai = value("reactor", "idle", "rss_mb"), value("asyncio", "idle", "rss_mb")
        return ri <= 0.6 * ai, f"{_fmt(ri)} MiB vs {_fmt(ai)} MiB: {ri / ai:.2f}x"

    def scale() -> tuple[bool, str]:
        plo, phi = (value("reactor", f"scale@{n}", "us_per_buyer") for n in (lo, hi))
        correct = [run["ok"] for run in runs if run["scenario"] == "scale"
                   and run["params"]["n"] == hi and run["server"] == "reactor"]
        return (all(correct) and phi <= 1.3 * plo,
                f"{_fmt(plo)} -> {_fmt(phi)} µs per buyer: {phi / plo:.2f}x; "
                f"{sum(correct)}/{len(correct)} runs at {hi} correct")

    def on(case: str, *servers: str) -> list[tuple[str, str]]:
        return [(case, srv) for srv in servers]

    verdict("rate: at least 1.5x asyncio, ahead of uvloop",
            on("rate", "reactor", "asyncio", "uvloop"), rate)
    verdict("storm: more BUSY/s than uvloop, lower p99", on("storm", "reactor", "uvloop"), storm)
    verdict("big: no listen-queue drops, time at most asyncio's",
            on("big", "reactor", "asyncio"), big)
    verdict("idle: RSS at most 0.6x asyncio's", on("idle", "reactor", "asyncio"), idle)
    verdict(f"scale: {hi} buyers correct, time per buyer within 1.3x of {lo}'s",
            [*on(f"scale@{lo}", "reactor"), *on(f"scale@{hi}", "reactor")], scale)
    return lines


# --- the plot ------------------------------------------------------------------------


def plot(med: dict[str, Any], servers: Sequence[str], sizes: Sequence[int], path: Path) -> Path:
    """Plot scale time and peak RSS against buyers, one line per server.

    Writes PNG with matplotlib; without it, an SVG next to ``path``. Returns
    the file written.
    """
    series = {
        srv: [(n, _get(med, f"scale@{n}", srv, "time_s"),
               _get(med, f"scale@{n}", srv, "peak_rss_mb")) for n in sizes]
        for srv in servers
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_svg(series, path.with_suffix(".svg"))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for srv, points in series.items():
        t = [(n, v) for n, v, _ in points if v is not None]
        m = [(n, v) for n, _, v in points if v is not None]
        if t:
            ax_t.plot(*zip(*t, strict=True), marker="o", label=srv)
        if m:
            ax_m.plot(*zip(*m, strict=True), marker="o", label=srv)
    ax_t.set(title="scale: START to last result", xlabel="buyers", ylabel="seconds (median)")
    ax_m.set(title="scale: server peak RSS", xlabel="buyers", ylabel="MiB (median)")
    for ax in (ax_t, ax_m):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_svg(series: dict[str, list[tuple[int, float | None, float | None]]], path: Path) -> Path:
    """A plain SVG line chart, for machines without matplotlib."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    width, height, pad = 420, 300, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" '
             'font-family="sans-serif" font-size="11">']
    for panel, (index, title) in enumerate(((1, "time [s]"), (2, "peak RSS [MiB]"))):
        x0 = panel * width
        values = [p[index] for pts in series.values() for p in pts]
        ymax = max([v for v in values if v is not None] or [1.0]) or 1.0
        xmax = max([p[0] for pts in series.values() for p in pts] or [1]) or 1

        def sx(n: float, x0: int = x0, xmax: float = xmax) -> float:
            return x0 + pad + (width - 2 * pad) * n / xmax

        def sy(v: float, ymax: float = ymax) -> float:
            return height - pad - (height - 2 * pad) * v / ymax

        parts.append(f'<text x="{x0 + width / 2}" y="20" text-anchor="middle">{title} '
                     f'against buyers (max {_fmt(ymax)})</text>')
        for x2, y2 in ((sx(xmax), sy(0)), (sx(0), sy(ymax))):  # the axes
            parts.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{x2}" y2="{y2}" stroke="black"/>')
        for i, (srv, pts) in enumerate(series.items()):
            line = [(p[0], p[index]) for p in pts if p[index] is not None]
            if not line:
                continue
            colour = colours[i % len(colours)]
            coords = " ".join(f"{sx(n):.1f},{sy(v):.1f}" for n, v in line)  # type: ignore[arg-type]
            parts.append(f'<polyline fill="none" stroke="{colour}" points="{coords}"/>')
            parts.append(
                f'<text x="{x0 + pad + 5}" y="{pad + 14 * i}" fill="{colour}">{srv}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path


# --- main ------------------------------------------------------------------------------


def available_cores() -> int:
    """Return how many cores this process may run on: its affinity mask where
    the system has one, else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def output_paths(json_arg: Path | None, plot_arg: Path | None,
                 profile_name: str) -> tuple[Path, Path]:
    """Return where the raw results and the scale plot go: the paths asked
    for, else side by side in bench/results/ (ignored by git), named by the
    time and the profile; so a run never overwrites a tracked file unless
    told to."""
    stem = ROOT / "bench" / "results" / (time.strftime("%Y%m%d-%H%M%S") + f"-{profile_name}")
    return json_arg or stem.with_suffix(".json"), plot_arg or Path(f"{stem}-scale.png")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 if every run was correct, else 1 (2 when
    none of the servers asked for can run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, shorter runs")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; smoke 1)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--scenarios", default=",".join(loadgen.SCENARIOS),
                        help=f"comma-separated subset of {','.join(loadgen.SCENARIOS)}")
    parser.add_argument("--poll", action="store_true",
                        help="the load generator polls its selector instead of sleeping "
                             "between events (see docs/PERFORMANCE.md)")
    parser.add_argument("--json", type=Path,
                        help="raw results file (default bench/results/TIME-PROFILE.json)")
    parser.add_argument("--plot", type=Path,
                        help="scale plot (default bench/results/TIME-PROFILE-scale.png; "
                             "--plot docs/bench-scale.png replaces the README's)")
    args = parser.parse_args(argv)
    profile_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    profile = PROFILES[profile_name]
    rounds = args.rounds or (1 if args.smoke else 3)
    servers = [s for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for name, known in ((servers, SERVERS), (scenarios, loadgen.SCENARIOS)):
        unknown = set(name) - set(known)
        if unknown:
            parser.error(f"unknown: {', '.join(sorted(unknown))}")
    cores = available_cores()
    # Missing benchmark-only packages: one line each, and the rest still runs.
    running = [s for s in servers if s not in NEEDS or importable(NEEDS[s])]
    for server in servers:
        if server not in running:
            print(missing(NEEDS[server], f"the {server} server is not run"), file=sys.stderr)
    if not running:
        print("Nothing to run.", file=sys.stderr)
        return 2
    if "scale" in scenarios and not importable("matplotlib"):
        print(missing("matplotlib", "the scale plot is written as SVG, not PNG"),
              file=sys.stderr)
    if args.poll and cores < 2:
        print("--poll: only 1 core is available, so the polling load generator "
              "takes its time from the server", file=sys.stderr)
    cases = plan(profile, scenarios)
    total = len(cases) * rounds * len(running)
    runs: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    began = time.monotonic()
    step = 0
    for scenario, params in cases:
        for rnd in range(1, rounds + 1):
            for server in running:  # A B C D, A B C D, ...
                step += 1
                record = run_once(server, scenario, params, poll=args.poll)
                record["round"] = rnd
                runs.append(record)
                shown = " ".join(f"{k}={_fmt(v)}" for k, v in record["metrics"].items()
                                 if k in {m for _, m, _, _ in TABLE})
                status = "ok" if record["ok"] else "FAILED: " + "; ".join(record["errors"][:3])
                print(f"[{step:3d}/{total}] {case_name(scenario, params):11s} round {rnd}/{rounds} "
                      f"{server:9s} {status:6s} {shown}", file=sys.stderr, flush=True)
    med = medians(runs)
    result_table = table(med, servers, ran(runs))
    target_lines = targets(med, runs, profile["scale"])
    ratios = (f"(ratio to {REFERENCE}) in brackets" if REFERENCE in running
              else f"no ratios: {REFERENCE} was not run")
    print(f"\nMedians of {rounds} round(s), {profile_name} profile, load generator "
          f"{'polling' if args.poll else 'sleeping in'} its selector; {ratios}:\n")
    print(result_table)
    print("\nTargets (docs/PERFORMANCE.md):\n" + "\n".join(target_lines))
    meta: dict[str, Any] = {
        "profile": profile_name, "rounds": rounds, "servers": running,
        "not_run": [s for s in servers if s not in running], "sizes": profile,
        "server_args": SERVER_ARGS, "loadgen": "polls" if args.poll else "sleeps",
        "python": platform.python_version(),
        "kernel": platform.release(), "cpus": os.cpu_count(), "cpus_available": cores,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "seconds": time.monotonic() - began, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        meta["uvloop"] = importlib.metadata.version("uvloop")
    except importlib.metadata.PackageNotFoundError:
        pass
    out, plot_path = output_paths(args.json, args.plot, profile_name)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "runs": runs, "medians": med,
                               "table": result_table, "targets": target_lines}, indent=1))
    print(f"\nRaw results: {out}")
    if "scale" in scenarios:
        print(f"Plot: {plot(med, running, profile['scale'], plot_path)}")
    machine = "" if os.cpu_count() == cores else f" of the machine's {os.cpu_count()}"
    print(f"Took {meta['seconds']:.0f} s on {cores} core{'s' if cores != 1 else ''}{machine}; "
          f"load average {load_before[0]:.2f} before, {meta['loadavg_after'][0]:.2f} after.")
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
