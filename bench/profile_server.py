#!/usr/bin/env python3
"""Profile a server under one benchmark scenario with cProfile.

    python3 bench/profile_server.py rate            # auc_server, 5 s of rate
    python3 bench/profile_server.py big --top 40
    python3 bench/profile_server.py storm --server uvloop

Runs ``python3 -m cProfile -o FILE <server> PORT --quiet --no-ledger ...``,
drives it with the load generator, stops it with SIGTERM (cProfile writes the
file as the server exits) and prints the top entries by own time (tottime).
The profile is kept in bench/results/profile-SERVER-SCENARIO.prof for
``python3 -m pstats``. cProfile slows the server down several times, so read
the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import pstats
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import loadgen, run  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one run; return 0 if the run was correct, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(loadgen.SCENARIOS))
    parser.add_argument("--server", default="reactor", choices=sorted(run.SERVERS))
    parser.add_argument("--top", type=int, default=25, help="entries to print (default 25)")
    parser.add_argument("--n", type=int, help="buyers (big, idle, scale)")
    parser.add_argument("--duration", type=float, help="seconds (rate, storm)")
    args = parser.parse_args(argv)
    needed = run.NEEDS.get(args.server)
    if needed is not None and not run.importable(needed):
        print(run.missing(needed, f"the {args.server} server cannot be profiled"),
              file=sys.stderr)
        return 2
    params = run.plan(run.PROFILES["full"], [args.scenario])[-1][1]  # scale: the largest
    for key in ("n", "duration"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    out = ROOT / "bench" / "results" / f"profile-{args.server}-{args.scenario}.prof"
    out.parent.mkdir(parents=True, exist_ok=True)
    server = run.Server(args.server, run.free_port(),
                        python_args=["-m", "cProfile", "-o", str(out)])
    outcome = loadgen.run_scenario(args.scenario, ("127.0.0.1", server.port), server.proc.pid,
                                   **params)
    status, err = server.stop()
    print(f"{args.server} {args.scenario} {params}: exit {status}, "
          f"{'ok' if not outcome.errors else outcome.errors}")
    print("  " + " ".join(f"{k}={v:.4g}" for k, v in outcome.metrics.items()))
    if status != 0 or not out.exists():
        print(err, file=sys.stderr)
        return 1
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"Profile: {out}")
    return 0 if not outcome.errors else 1


if __name__ == "__main__":
    sys.exit(main())
