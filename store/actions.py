"""Actions: what a rule decided to do, and the one place their status changes.

Every change of status is a check-and-set (``UPDATE ... WHERE status =
:expected``), so two workers, two schedulers, or a job delivered twice can
race and only one of them wins each step. The database is the source of
truth for what is due; Redis only carries work that is due now.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aftersale.core.steps import max_attempts_for
from aftersale.store.sql import commit_without_flush_wait, for_update, insert_ignore
from aftersale.store.tables import actions, messages


class ActionStatus(StrEnum):
    SCHEDULED = "scheduled"  # waiting in the database for its due time
    WAITING = "waiting"  # waiting for a later event (wait_for), due_at is the timeout
    QUEUED = "queued"  # handed to RQ
    RUNNING = "running"  # a worker holds the lease
    SENT = "sent"
    SKIPPED = "skipped"  # see skip_reason: cancelled, no_consent, suppressed, capped, ...
    FAILED = "failed"  # permanent error
    DEAD = "dead"  # transient errors until attempts ran out


PENDING = (ActionStatus.SCHEDULED, ActionStatus.WAITING, ActionStatus.QUEUED)
FINAL = (ActionStatus.SENT, ActionStatus.SKIPPED, ActionStatus.FAILED, ActionStatus.DEAD)
RETRYABLE = (ActionStatus.FAILED, ActionStatus.DEAD)


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
        found = conn.execute(
            insert_ignore(conn, actions).values(**values).returning(actions.c.id)
        ).first()
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


def cancel_for_event(
    conn: Connection, shop_id: int, order_ref: str | None, kind: str, now: datetime
) -> list[int]:
    """Skip pending actions of this order whose rule said ``cancel_on`` this kind of event."""
    if order_ref is None:
        return []
    pending = conn.execute(
        for_update(
            conn,
            select(actions.c.id, actions.c.cancel_on).where(
                actions.c.shop_id == shop_id,
                actions.c.order_ref == order_ref,
                actions.c.status.in_([s.value for s in PENDING]),
            ),
        )
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


def release_waiting(
    conn: Connection, shop_id: int, order_ref: str | None, kind: str, at: datetime, now: datetime
) -> list[int]:
    """``wait_for``: the awaited event came; waiting actions of this order are due at the
    event's time plus their rule's wait. The ids of those due already, now ``queued`` for the
    caller to hand to RQ after commit (the others are ``scheduled``)."""
    if order_ref is None:
        return []
    waiting = conn.execute(
        for_update(
            conn,
            select(actions.c.id, actions.c.wait_for).where(
                actions.c.shop_id == shop_id,
                actions.c.order_ref == order_ref,
                actions.c.status == ActionStatus.WAITING.value,
            ),
        )
    ).all()
    released = []
    for row in waiting:
        spec = row.wait_for or {}
        if kind not in (spec.get("events") or ()):
            continue
        due = at + timedelta(seconds=spec.get("wait_seconds") or 0)
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


def time_out_waiting(conn: Connection, now: datetime, limit: int) -> tuple[list[int], list[int]]:
    """``wait_for`` timeouts: (ids now due to send, ids skipped), per each rule's on_timeout."""
    expired = conn.execute(
        for_update(
            conn,
            select(actions.c.id, actions.c.wait_for)
            .where(actions.c.status == ActionStatus.WAITING.value, actions.c.due_at <= now)
            .limit(limit),
            skip_locked=True,
        )
    ).all()
    send = [r.id for r in expired if (r.wait_for or {}).get("on_timeout", "send") == "send"]
    skip = [r.id for r in expired if r.id not in send]
    if send:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(send), actions.c.status == ActionStatus.WAITING.value)
            .values(status=ActionStatus.SCHEDULED.value, updated_at=now)
        )
    if skip:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(skip), actions.c.status == ActionStatus.WAITING.value)
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason="timeout",
                last_error="the awaited event did not come in time",
                finished_at=now,
                updated_at=now,
            )
        )
    return send, skip


def claim_due(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Move up to ``limit`` due scheduled actions to ``queued``; their ids.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several schedulers claim
    disjoint batches at once; on SQLite the write lock taken by BEGIN
    IMMEDIATE serializes them. The status check in the UPDATE makes a
    double claim impossible on both.
    """
    due = (
        conn.execute(
            for_update(
                conn,
                select(actions.c.id)
                .where(actions.c.status == ActionStatus.SCHEDULED.value, actions.c.due_at <= now)
                .order_by(actions.c.due_at)
                .limit(limit),
                skip_locked=True,
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return []
    return (
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(due), actions.c.status == ActionStatus.SCHEDULED.value)
            .values(status=ActionStatus.QUEUED.value, queued_at=now, updated_at=now)
            .returning(actions.c.id)
        )
        .scalars()
        .all()
    )


def start(conn: Connection, action_id: int, now: datetime, lease: timedelta):
    """``queued -> running`` with a lease; the row, or None if another worker or a cancel won."""
    return conn.execute(
        update(actions)
        .where(actions.c.id == action_id, actions.c.status == ActionStatus.QUEUED.value)
        .values(
            status=ActionStatus.RUNNING.value,
            attempts=actions.c.attempts + 1,
            started_at=now,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .returning(*actions.c)
    ).first()


def start_many(conn: Connection, ids: list[int], now: datetime, lease: timedelta) -> dict:
    """``queued -> running`` for a job's actions at once; {id: row} of those this worker won.

    On PostgreSQL the claim commits without waiting for the WAL flush
    (``synchronous_commit = off`` for this transaction only): visibility to
    other workers is immediate, and a database crash that lost the claim
    could not cause a second send that losing a durable claim would not (the
    send is recorded durably afterwards, and a lost claim only returns the
    action to ``queued``).
    """
    commit_without_flush_wait(conn)
    rows = conn.execute(
        update(actions)
        .where(actions.c.id.in_(ids), actions.c.status == ActionStatus.QUEUED.value)
        .values(
            status=ActionStatus.RUNNING.value,
            attempts=actions.c.attempts + 1,
            started_at=now,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .returning(*actions.c)
    ).all()
    return {row.id: row for row in rows}


def transition(
    conn: Connection, action_id: int, frm: ActionStatus, to: ActionStatus, now: datetime, **values
) -> bool:
    """Check-and-set one action from ``frm`` to ``to``; False when it was not in ``frm``."""
    if to in FINAL:
        values.setdefault("finished_at", now)
    names = tuple(sorted(values))
    stmt = _TRANSITIONS.get(names)
    if stmt is None:
        # Built once per set of columns: building the expression cost more than running it.
        stmt = _TRANSITIONS[names] = (
            update(actions)
            .where(actions.c.id == bindparam("w_id"), actions.c.status == bindparam("w_from"))
            .values(
                status=bindparam("v_status"),
                updated_at=bindparam("v_updated_at"),
                **{name: bindparam(f"v_{name}") for name in names},
            )
        )
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(w_id=action_id, w_from=frm.value, v_status=to.value, v_updated_at=now)
    return conn.execute(stmt, params).rowcount == 1


_TRANSITIONS: dict[tuple, object] = {}


def release_expired_leases(conn: Connection, now: datetime) -> list[int]:
    """Running actions whose worker died (lease expired) become due again, or dead letters
    when they have used up their attempts (an action that kills its worker every time).

    The interrupted attempt is recorded as ``lost``: nobody knows whether the
    provider got it, which is why an email keeps its Message-ID on the retry.
    """
    expired = conn.execute(
        for_update(
            conn,
            select(
                actions.c.id,
                actions.c.shop_id,
                actions.c.attempts,
                actions.c.max_attempts,
                actions.c.action_type,
                actions.c.lease_expires_at,
            ).where(
                actions.c.status == ActionStatus.RUNNING.value, actions.c.lease_expires_at < now
            ),
            skip_locked=True,
        )
    ).all()
    if not expired:
        return []
    exhausted = [r.id for r in expired if r.attempts >= r.max_attempts]
    again = [r.id for r in expired if r.attempts < r.max_attempts]
    running = actions.c.status == ActionStatus.RUNNING.value
    if exhausted:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(exhausted), running)
            .values(
                status=ActionStatus.DEAD.value,
                last_error="worker lost while running; attempts used up",
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
    if again:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(again), running)
            .values(
                status=ActionStatus.SCHEDULED.value,
                due_at=now,
                last_error="worker lost while running (lease expired); running it again",
                lease_expires_at=None,
                job_id=None,
                updated_at=now,
            )
        )
    conn.execute(
        messages.insert(),
        [
            {
                "action_id": r.id,
                "shop_id": r.shop_id,
                "attempt": r.attempts,
                "channel": r.action_type,
                "status": "lost",
                "error": f"worker lost mid-run; lease expired at {r.lease_expires_at.isoformat()}",
                "created_at": now,
            }
            for r in expired
        ],
    )
    return again


def set_jobs(conn: Connection, jobs: dict[str, list[int]], now: datetime) -> None:
    """Record which RQ job carries each queued action (``{job id: [action ids]}``)."""
    for job_id, ids in jobs.items():
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(ids), actions.c.status == ActionStatus.QUEUED.value)
            .values(job_id=job_id, queued_at=now)
        )


def unqueue(conn: Connection, ids: list[int], now: datetime) -> None:
    """Queued actions whose hand-off to RQ failed go back to ``scheduled`` for the next tick."""
    if ids:
        conn.execute(
            update(actions)
            .where(actions.c.id.in_(ids), actions.c.status == ActionStatus.QUEUED.value)
            .values(status=ActionStatus.SCHEDULED.value, job_id=None, updated_at=now)
        )


def queued_before(conn: Connection, before: datetime, limit: int):
    """(id, job_id) of actions handed to RQ a while ago and not started."""
    return conn.execute(
        select(actions.c.id, actions.c.job_id)
        .where(actions.c.status == ActionStatus.QUEUED.value, actions.c.queued_at < before)
        .order_by(actions.c.id)
        .limit(limit)
    ).all()


def defer(conn: Connection, action_id: int, until: datetime, now: datetime, reason: str) -> bool:
    """``running -> scheduled`` at ``until``, giving back the attempt the claim counted."""
    return (
        conn.execute(
            update(actions)
            .where(actions.c.id == action_id, actions.c.status == ActionStatus.RUNNING.value)
            .values(
                status=ActionStatus.SCHEDULED.value,
                due_at=until,
                attempts=actions.c.attempts - 1,
                last_error=f"deferred: {reason}",
                lease_expires_at=None,
                job_id=None,
                updated_at=now,
            )
        ).rowcount
        == 1
    )


def retry(conn: Connection, ids: Iterable[int] | None, now: datetime) -> list[int]:
    """Failed or dead actions (``ids``, or every dead letter when None) become due now,
    with a fresh round of attempts; returns the ids that were retried."""
    where = [actions.c.status.in_([s.value for s in RETRYABLE])]
    if ids is None:
        where = [actions.c.status == ActionStatus.DEAD.value]
    else:
        where.append(actions.c.id.in_(list(ids)))
    rows = conn.execute(
        for_update(conn, select(actions.c.id, actions.c.action_type).where(*where))
    ).all()
    for row in rows:
        conn.execute(
            update(actions)
            .where(actions.c.id == row.id, actions.c.status.in_([s.value for s in RETRYABLE]))
            .values(
                status=ActionStatus.SCHEDULED.value,
                due_at=now,
                max_attempts=actions.c.attempts + max_attempts_for(row.action_type),
                skip_reason=None,
                finished_at=None,
                job_id=None,
                updated_at=now,
            )
        )
    return [row.id for row in rows]


def cancel(conn: Connection, action_id: int, now: datetime, reason: str) -> bool:
    """Skip a pending action (``cancelled``); False when it is running or already final."""
    return (
        conn.execute(
            update(actions)
            .where(
                actions.c.id == action_id,
                actions.c.status.in_([s.value for s in PENDING]),
            )
            .values(
                status=ActionStatus.SKIPPED.value,
                skip_reason="cancelled",
                last_error=reason,
                job_id=None,
                finished_at=now,
                updated_at=now,
            )
        ).rowcount
        == 1
    )


def get(conn: Connection, action_id: int):
    return conn.execute(select(actions).where(actions.c.id == action_id)).first()


def by_ids(conn: Connection, ids: Iterable[int]):
    return conn.execute(
        select(actions).where(actions.c.id.in_(list(ids))).order_by(actions.c.id)
    ).all()
