"""Why a rule did not act: one short row per event and rule of its kind that did not match.

Written in the transaction that stores the event, so a delivery processed
twice records its misses once; read by ``aftersale actions show``; deleted
after RULE_MISS_DAYS by the scheduler, like old delivery bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from aftersale.store.fit import fit_row
from aftersale.store.tables import rule_misses


@dataclass(frozen=True)
class Miss:
    """A rule that did not match: the first failing check and the value it saw."""

    rule: str
    check: str
    actual: str | None = None


def record(conn: Connection, shop_id: int, event_id: int, misses: list[Miss], now) -> None:
    """Store the misses of one event (nothing when every rule matched)."""
    if not misses:
        return
    conn.execute(
        rule_misses.insert(),
        [
            fit_row(
                rule_misses,
                {
                    "shop_id": shop_id,
                    "event_id": event_id,
                    "rule": miss.rule,
                    "failed_check": miss.check,
                    "actual": miss.actual,
                    "created_at": now,
                },
            )
            for miss in misses
        ],
    )


def for_event(conn: Connection, event_id: int) -> list[Miss]:
    """The rules that did not match an event, in the order they were judged."""
    rows = conn.execute(
        select(rule_misses.c.rule, rule_misses.c.failed_check, rule_misses.c.actual)
        .where(rule_misses.c.event_id == event_id)
        .order_by(rule_misses.c.id)
    ).all()
    return [Miss(row.rule, row.failed_check, row.actual) for row in rows]


def expire(conn: Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` rows recorded before ``before``; how many were deleted."""
    ids = (
        conn.execute(
            select(rule_misses.c.id)
            .where(rule_misses.c.created_at < before)
            .order_by(rule_misses.c.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0
    return conn.execute(delete(rule_misses).where(rule_misses.c.id.in_(ids))).rowcount
