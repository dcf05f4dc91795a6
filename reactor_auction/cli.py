"""Argument types and help layout both command lines share. Pure argparse;
no I/O beyond what argparse itself does."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable


def _whole(text: str) -> int | None:
    """Return the value of ASCII digits only (no sign, no spaces), else None."""
    return int(text) if text.isascii() and text.isdigit() else None


def port_number(text: str) -> int:
    """Return a TCP port 0-65535 (0: any free port). Raises ArgumentTypeError."""
    value = _whole(text)
    if value is None or value > 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return value


def remote_port(text: str) -> int:
    """Return a TCP port to connect to, 1-65535. Raises ArgumentTypeError."""
    value = _whole(text)
    if value is None or not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port to connect to (1-65535): {text!r}")
    return value


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
    value = _whole(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """Return a whole number of at least 0. Raises ArgumentTypeError."""
    value = _whole(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return value


def exit_status_epilog(statuses: Iterable[tuple[int, str]]) -> str:
    """Return an ``--help`` epilog listing exit statuses: a heading, then one
    ``  <status>  <meaning>`` line for each (status, meaning) pair, in order
    (the parser needs ``RawDescriptionHelpFormatter`` to keep the lines)."""
    return "exit status:\n" + "\n".join(f"  {status:>3}  {meaning}" for status, meaning in statuses)
