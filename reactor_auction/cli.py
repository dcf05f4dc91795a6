"""What both command lines share: argument types and the console-script entry
helpers. Pure argparse; no I/O beyond what argparse itself does."""

from __future__ import annotations

import argparse
import math


def port_number(text: str) -> int:
    """Return a TCP port 0-65535 (0: any free port). Raises ArgumentTypeError."""
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return int(text)


def positive_seconds(text: str) -> float:
    """Return a positive, finite number of seconds. Raises ArgumentTypeError."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def positive_int(text: str) -> int:
    """Return a whole number of at least 1. Raises ArgumentTypeError."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    """Return a whole number of at least 0. Raises ArgumentTypeError."""
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)
