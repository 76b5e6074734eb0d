"""Durations as store owners write them: ``30m``, ``7d``, ``2w``, ``1d12h``, ``0``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value) -> timedelta:
    """Parse a duration; raise ValueError with a message a store owner understands."""
    if value == 0 or value == "0":
        return timedelta(0)
    if isinstance(value, bool) or not isinstance(value, str) or not _WHOLE.match(value):
        raise ValueError(
            f"bad duration {value!r}: use a number and a unit, e.g. 30m, 12h, 7d, 2w (units s, m, h, d, w)"
        )
    total = timedelta(0)
    for amount, unit in _PART.findall(value):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
