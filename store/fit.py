"""Rows made to fit their table: the one place a too-long value is cut, never an error.

Columns are wide enough for real data (migration 0004_hardening); a value
still longer than its ``String(n)`` column is truncated here, with a warning,
rather than failing the whole delivery on PostgreSQL. NUL characters, which
PostgreSQL refuses in text, are dropped too.
"""

from __future__ import annotations

from sqlalchemy import Table

from aftersale.core import logs

log = logs.get_logger("store.fit")


def fit_row(table: Table, values: dict, warnings: list[str] | None = None) -> dict:
    """``values`` with every string cut to its column's length; notes go to ``warnings``."""
    out = dict(values)
    for key, value in values.items():
        if not isinstance(value, str) or key not in table.c:
            continue
        if "\x00" in value:
            value = value.replace("\x00", "")
        length = getattr(table.c[key].type, "length", None)
        if length and len(value) > length:
            note = f"{table.name}.{key}: {len(value)} characters truncated to {length}"
            log.warning("value.truncated", table=table.name, column=key, length=len(value))
            if warnings is not None and note not in warnings:
                warnings.append(note)
            value = value[:length]
        out[key] = value
    return out
