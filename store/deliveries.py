"""The durable inbox. A delivery that was answered 200 has a row here before the answer.

Statuses: ``pending`` (stored, not yet handed to RQ), ``queued`` (handed
over), then ``processed``, ``ignored`` (a topic we do not act on), ``stale``
(older than the stored state), ``rejected`` (a body whose shape does not fit
its topic: recorded with a note, no events), or ``failed`` (processing raised
too often).

Two deliveries are the same when they share the connector's dedupe key, the
platform's event id (per topic) or, where the connector gives one, the body's
hash (per topic): Shopify signs only the body, so a captured delivery re-sent
under a new webhook id is caught by its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aftersale.store.sql import CompiledInsert, for_update
from aftersale.store.tables import deliveries

UNPROCESSED = ("pending", "queued")
FINAL = ("processed", "ignored", "stale", "rejected", "failed")


@dataclass
class NewDelivery:
    shop_id: int
    topic: str
    dedupe_key: str
    delivery_id: str | None
    event_id: str | None
    api_version: str | None
    triggered_at: datetime | None
    received_at: datetime
    headers: dict
    body: bytes
    #: SHA-256 hex of the body when the connector dedupes on it (None: it does not)
    body_hash: str | None = None

    def row(self) -> dict:
        return {
            "shop_id": self.shop_id,
            "topic": self.topic,
            "dedupe_key": self.dedupe_key,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "api_version": self.api_version,
            "triggered_at": self.triggered_at,
            "received_at": self.received_at,
            "headers": self.headers,
            "body": self.body,
            "body_hash": self.body_hash,
            "status": "pending",
            "attempts": 0,
        }


def insert_many(conn: Connection, batch: list[NewDelivery]) -> list[int | None]:
    """Insert a batch in the caller's transaction; the id of each new row, None for a duplicate.

    A duplicate is a delivery whose key, event id or body hash (the last two
    per topic) is already stored, including an earlier member of the same batch.
    """
    if not batch:
        return []
    insert = _INBOX_INSERTS.get(conn.dialect.name)
    if insert is None:
        insert = _INBOX_INSERTS[conn.dialect.name] = CompiledInsert(
            deliveries, NEW_DELIVERY_COLUMNS, "id", conn.dialect
        )
    return insert.run(conn, [d.row() for d in batch])


NEW_DELIVERY_COLUMNS = (
    "shop_id",
    "topic",
    "dedupe_key",
    "delivery_id",
    "event_id",
    "api_version",
    "triggered_at",
    "received_at",
    "headers",
    "body",
    "body_hash",
    "status",
    "attempts",
)
_INBOX_INSERTS: dict[str, CompiledInsert] = {}


def mark_enqueued(conn: Connection, jobs: dict[str, list[int]], now: datetime) -> None:
    """Record which RQ job carries each delivery (``{job id: [delivery ids]}``)."""
    for job_id, ids in jobs.items():
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.status.in_(UNPROCESSED))
            .values(status="queued", enqueued_at=now, job_id=job_id)
        )


def claim(conn: Connection, delivery_id: int):
    """Take a delivery for processing inside the caller's transaction, or None if done.

    The row is set to ``processed`` at once: if processing raises, the
    transaction rolls back and the row is unprocessed again; if another
    worker holds it, this one waits for its commit and then finds it done.
    """
    return conn.execute(_CLAIM, {"row_id": delivery_id}).first()


_CLAIM = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("row_id"), deliveries.c.status.in_(UNPROCESSED))
    .values(status="processed", attempts=deliveries.c.attempts + 1)
    .returning(*deliveries.c)
)
_FINISH = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("row_id"))
    .values(
        status=bindparam("outcome", type_=deliveries.c.status.type),
        processed_at=bindparam("at", type_=deliveries.c.processed_at.type),
        error=bindparam("note", type_=deliveries.c.error.type),
    )
)


def finish(
    conn: Connection, delivery_id: int, status: str, now: datetime, note: str | None = None
) -> None:
    conn.execute(_FINISH, {"row_id": delivery_id, "outcome": status, "at": now, "note": note})


def record_failure(
    conn: Connection, delivery_id: int, error: str, now: datetime, max_attempts: int
) -> str:
    """After processing raised: count the attempt; give up (``failed``) after ``max_attempts``."""
    row = conn.execute(select(deliveries.c.attempts).where(deliveries.c.id == delivery_id)).first()
    attempts = (row.attempts if row else 0) + 1
    status = "failed" if attempts >= max_attempts else "pending"
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.status.in_(UNPROCESSED))
        .values(status=status, attempts=attempts, error=error[:2000], job_id=None, processed_at=now)
    )
    return status


def claim_pending(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Mark up to ``limit`` pending deliveries ``queued`` for the relay; their ids, oldest first.

    Several relays may run: on PostgreSQL ``SKIP LOCKED`` gives each its own
    rows, on SQLite the write lock serializes them, and the status check in
    the UPDATE makes a double claim impossible on both.
    """
    pending = (
        conn.execute(
            for_update(
                conn,
                select(deliveries.c.id)
                .where(deliveries.c.status == "pending")
                .order_by(deliveries.c.id)
                .limit(limit),
                skip_locked=True,
            )
        )
        .scalars()
        .all()
    )
    if not pending:
        return []
    return sorted(
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(pending), deliveries.c.status == "pending")
            .values(status="queued", enqueued_at=now)
            .returning(deliveries.c.id)
        )
        .scalars()
        .all()
    )


def unclaim(conn: Connection, ids: list[int]) -> None:
    """Claimed deliveries whose hand-off to RQ failed wait as ``pending`` again."""
    if ids:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids), deliveries.c.status == "queued")
            .values(status="pending", enqueued_at=None, job_id=None)
        )


def queued_before(conn: Connection, before: datetime, limit: int):
    """(id, job_id, since) of deliveries handed to RQ a while ago and still unprocessed."""
    return conn.execute(
        select(deliveries.c.id, deliveries.c.job_id, deliveries.c.enqueued_at.label("since"))
        .where(deliveries.c.status == "queued", deliveries.c.enqueued_at < before)
        .order_by(deliveries.c.id)
        .limit(limit)
    ).all()


def still_queued(conn: Connection, ids: list[int]) -> dict[int, str | None]:
    """id -> job id of those of ``ids`` still waiting for a job, read after Redis was asked.

    A job that finished between the scheduler's first read and its look at Redis
    (RQ deletes a finished job at once: ``result_ttl=0``) looks gone; its rows are
    processed by then, and this second read drops them.
    """
    if not ids:
        return {}
    found = conn.execute(
        select(deliveries.c.id, deliveries.c.job_id).where(
            deliveries.c.id.in_(ids), deliveries.c.status == "queued"
        )
    )
    return dict(found.all())


def get(conn: Connection, delivery_id: int):
    return conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()


def reopen(conn: Connection, delivery_id: int, now: datetime):
    """Make a stored delivery processable again (``aftersale deliveries replay``); None if unknown.

    Replaying is idempotent downstream: events are unique per happening and
    actions per rule and subject, so a replay only adds what is missing.
    """
    return conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status="queued", job_id=None, enqueued_at=now, error=None)
        .returning(deliveries.c.id, deliveries.c.topic, deliveries.c.shop_id)
    ).first()
