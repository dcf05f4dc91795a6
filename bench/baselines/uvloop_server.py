#!/usr/bin/env python3
"""Benchmark baseline: asyncio_server.py, unchanged, on uvloop's event loop.

    python3 bench/baselines/uvloop_server.py PORT [auc_server's options]

uvloop is a benchmark-only dependency (bench/requirements.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.asyncio_server import main  # noqa: E402

#: What to say, on one line, when uvloop cannot be imported.
MISSING = ("uvloop_server.py: uvloop is not installed; install it with "
           "python3 -m pip install -r bench/requirements.txt (or: python3 -m pip install uvloop)")

if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        sys.exit(MISSING)  # status 1, the line on stderr
    sys.exit(main(loop_factory=uvloop.new_event_loop, prog="uvloop_server.py", what="uvloop"))
