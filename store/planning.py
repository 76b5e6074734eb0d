"""Planning: the actions a rule asks for, created once per subject, cancelled or released
by later events. The lifecycle that follows (claim, lease, transitions, retries) is
``store/actions.py``; this module writes only rows that have not started.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aftersale.core.steps import max_attempts_for
from aftersale.store.actions import PENDING, ActionStatus
from aftersale.store.sql import Locking, for_update, insert_returning_id
from aftersale.store.tables import actions


def create(conn: Connection, rows: list[dict], now: datetime) -> list[tuple[int, str]]:
    """Insert planned actions; a row whose once_key exists is skipped. Returns (id, status) of new rows.

    An action already due is created ``queued`` so the caller can hand it to
    RQ right after commit, without waiting for the scheduler's next tick.
    """
    created = []
    for row in rows:
        if row.get("wait_for"):
            status = ActionStatus.WAITING  # due_at is the timeout
        elif row["due_at"] <= now:
            status = ActionStatus.QUEUED
        else:
            status = ActionStatus.SCHEDULED
        values = {
            "max_attempts": max_attempts_for(row["action_type"]),
            **row,
            "status": status.value,
            "queued_at": now if status is ActionStatus.QUEUED else None,
            "created_at": now,
            "updated_at": now,
        }
        found = conn.execute(insert_returning_id(conn, actions), values).first()
        if found is not None:
            created.append((found.id, status.value))
    return created


SUBJECT_COLUMNS = {
    "order": "order_ref",
    "customer": "customer_ref",
    "fulfillment": "fulfillment_ref",
}
#: an action in one of these counts for ``once_per ... within``: planned or tried; a skipped
#: one (cancelled, no consent, late, ...) never happened
COUNTED = (
    ActionStatus.SCHEDULED,
    ActionStatus.WAITING,
    ActionStatus.QUEUED,
    ActionStatus.RUNNING,
    ActionStatus.SENT,
    ActionStatus.FAILED,
    ActionStatus.DEAD,
)


#: what ``mode: restart|queued`` counts as done: a second trigger after these is ignored
DONE = (ActionStatus.RUNNING, ActionStatus.SENT, ActionStatus.FAILED, ActionStatus.DEAD)


def acted_within(
    conn: Connection,
    shop_id: int,
    rule: str,
    subject: str,
    ref: str | None,
    since: datetime | None,
    statuses=COUNTED,
) -> bool:
    """Whether ``rule`` already acted (or will) on this order/customer/fulfillment since then."""
    column = SUBJECT_COLUMNS.get(subject)
    if column is None or not ref:
        return False
    where = [
        actions.c.shop_id == shop_id,
        actions.c[column] == ref,
        actions.c.rule == rule,
        actions.c.status.in_([s.value for s in statuses]),
    ]
    if since is not None:
        where.append(actions.c.created_at >= since)
    return conn.execute(select(actions.c.id).where(*where).limit(1)).first() is not None


def restart_pending(
    conn: Connection, shop_id: int, rule: str, subject: str, ref: str | None, now: datetime
) -> list[int]:
    """``mode: restart``: this rule's pending actions for the subject are replaced (skipped)."""
    column = SUBJECT_COLUMNS.get(subject)
    if column is None or not ref:
        return []
    return list(
        conn.execute(
            update(actions)
            .where(
                actions.c.shop_id == shop_id,
                actions.c[column] == ref,
                actions.c.rule == rule,
                actions.c.status.in_([ActionStatus.SCHEDULED.value, ActionStatus.WAITING.value]),
            )
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason="restarted",
                last_error="replaced by a later trigger (mode: restart)",
                finished_at=now,
                updated_at=now,
            )
            .returning(actions.c.id)
        ).scalars()
    )


#: the reads every delivery makes, built once (building them cost more than running them)
_PENDING_OF_ORDER = Locking(
    select(actions.c.id, actions.c.cancel_on).where(
        actions.c.shop_id == bindparam("shop_id"),
        actions.c.order_ref == bindparam("order_ref"),
        actions.c.status.in_([s.value for s in PENDING]),
    )
)
_PENDING_OF_CUSTOMER = (
    select(actions.c.id, actions.c.cancel_on_customer)
    .where(
        actions.c.shop_id == bindparam("shop_id"),
        actions.c.customer_ref == bindparam("customer_ref"),
        actions.c.cancel_on_customer.is_not(None),
        actions.c.status.in_([s.value for s in PENDING]),
    )
    .order_by(actions.c.id)
)
_WAITING_OF_ORDER = Locking(
    select(actions.c.id, actions.c.wait_for, actions.c.rule, actions.c.action_type).where(
        actions.c.shop_id == bindparam("shop_id"),
        actions.c.order_ref == bindparam("order_ref"),
        actions.c.status == ActionStatus.WAITING.value,
    )
)


def cancel_for_event(
    conn: Connection, shop_id: int, order_ref: str | None, kind: str, now: datetime
) -> list[int]:
    """Skip pending actions of this order whose rule said ``cancel_on`` this kind of event."""
    if order_ref is None:
        return []
    pending = conn.execute(
        _PENDING_OF_ORDER.on(conn), {"shop_id": shop_id, "order_ref": order_ref}
    ).all()
    ids = [row.id for row in pending if kind in (row.cancel_on or ())]
    if ids:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(ids), actions.c.status.in_([s.value for s in PENDING]))
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason="cancelled",
                last_error=f"cancelled by {kind}",
                finished_at=now,
                updated_at=now,
            )
        )
    return ids


def cancel_for_customer(
    conn: Connection, shop_id: int, customer_ref: str | None, kind: str, now: datetime
) -> list[int]:
    """``cancel_on: [{event: KIND, scope: customer}]``: skip the customer's pending actions,
    on any order, whose rule said so (a new order ends a win-back planned on an old one)."""
    if customer_ref is None:
        return []
    # Read without locking: other orders of the customer are being processed at the same
    # time (their own order locks), and the skip below is a check-and-set on the status.
    pending = conn.execute(
        _PENDING_OF_CUSTOMER, {"shop_id": shop_id, "customer_ref": customer_ref}
    ).all()
    ids = [row.id for row in pending if kind in (row.cancel_on_customer or ())]
    return skip_pending(conn, ids, now, "cancelled", f"cancelled by {kind} (scope: customer)")


def skip_pending(conn: Connection, ids: list[int], now: datetime, reason: str, detail: str):
    """Skip those of ``ids`` still pending (check-and-set); the ids that were skipped."""
    if not ids:
        return []
    return list(
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(ids), actions.c.status.in_([s.value for s in PENDING]))
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason=reason,
                last_error=detail,
                job_id=None,
                finished_at=now,
                updated_at=now,
            )
            .returning(actions.c.id)
        ).scalars()
    )


def join_digests(conn: Connection, rows: list[dict], now: datetime) -> tuple[list[dict], list[int]]:
    """``digest``: fold each row into its open digest action when there is one; returns the
    rows still to create (they open a digest) and the ids of the actions that were joined.

    A digest is open while it is ``scheduled`` and its window has not closed. The row is
    locked before it is extended, and the scheduler claims with SKIP LOCKED and a status
    check: an event either joins a digest before it is claimed, or opens a new one. So an
    event is listed in exactly one message, never lost and never twice. A digest another
    transaction holds right now is skipped, not waited for (waiting could deadlock with
    that transaction's other row locks, e.g. the customer's): under such contention an
    event opens a second digest rather than block.
    """
    remaining, joined = [], []
    for row in rows:
        if not row.get("digest_key"):
            remaining.append(row)
            continue
        found = _join_digest(conn, row, now)
        if found is None:
            remaining.append(row)
        else:
            joined.append(found)
    return remaining, joined


def _join_digest(conn: Connection, row: dict, now: datetime) -> int | None:
    member = row["digest"]["events"][0]
    open_rows = conn.execute(
        for_update(
            conn,
            select(actions.c.id, actions.c.digest)
            .where(
                actions.c.shop_id == row["shop_id"],
                actions.c.digest_key == row["digest_key"],
                actions.c.step == row["step"],
                actions.c.status == ActionStatus.SCHEDULED.value,
            )
            .order_by(actions.c.id),
            skip_locked=True,
        )
    ).all()
    for found in open_rows:
        digest = found.digest or {}
        closes_at = digest.get("closes_at")
        if not closes_at or _moment(member["occurred_at"]) >= _moment(closes_at):
            continue
        events = list(digest.get("events") or ())
        if any(e.get("subject") == member["subject"] for e in events):
            return found.id  # once_per: this subject is in the digest already
        done = conn.execute(
            update(actions)
            .where(actions.c.id == found.id, actions.c.status == ActionStatus.SCHEDULED.value)
            .values(digest={**digest, "events": [*events, member]}, updated_at=now)
        )
        if done.rowcount == 1:
            return found.id
    return None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def release_waiting(
    conn: Connection,
    shop_id: int,
    order_ref: str | None,
    kind: str,
    at: datetime,
    now: datetime,
    adjust=None,
) -> list[int]:
    """``wait_for``: the awaited event came; waiting actions of this order are due at the
    event's time plus their rule's wait, moved by ``adjust(rule, action_type, due)`` (quiet
    hours and send windows, which the rules layer knows). The ids of those due already, now
    ``queued`` for the caller to hand to RQ after commit (the others are ``scheduled``)."""
    if order_ref is None:
        return []
    waiting = conn.execute(
        _WAITING_OF_ORDER.on(conn), {"shop_id": shop_id, "order_ref": order_ref}
    ).all()
    released = []
    for row in waiting:
        spec = row.wait_for or {}
        if kind not in (spec.get("events") or ()):
            continue
        due = at + timedelta(seconds=spec.get("wait_seconds") or 0)
        if adjust is not None:
            due = adjust(row.rule, row.action_type, due)
        status = ActionStatus.QUEUED if due <= now else ActionStatus.SCHEDULED
        done = conn.execute(
            update(actions)
            .where(actions.c.id == row.id, actions.c.status == ActionStatus.WAITING.value)
            .values(
                status=status.value,
                due_at=due,
                queued_at=now if status is ActionStatus.QUEUED else None,
                updated_at=now,
            )
        )
        if done.rowcount and status is ActionStatus.QUEUED:
            released.append(row.id)
    return released
