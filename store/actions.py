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
from aftersale.store.sql import commit_without_flush_wait, for_update
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


def renew_leases(conn: Connection, ids: Iterable[int], now: datetime, lease: timedelta) -> int:
    """Push the lease of running actions this worker holds to ``now + lease``; how many.

    Only ``running`` rows are touched: an action that finished, or whose lease
    already ran out and was released, is not taken back. Commits without
    waiting for the WAL flush: a lost renewal only shortens a lease.
    """
    ids = list(ids)
    if not ids:
        return 0
    commit_without_flush_wait(conn)
    return conn.execute(
        update(actions)
        .where(actions.c.id.in_(ids), actions.c.status == ActionStatus.RUNNING.value)
        .values(lease_expires_at=now + lease)
    ).rowcount


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


def release_expired_leases(
    conn: Connection, now: datetime, dead: list[int] | None = None
) -> list[int]:
    """Running actions whose worker died (lease expired) become due again, or dead letters
    when they have used up their attempts (an action that kills its worker every time).
    Returns the ones due again; the dead letters' ids are added to ``dead`` when given.

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
    if dead is not None:
        dead.extend(exhausted)
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
    """(id, job_id, since) of actions handed to RQ a while ago and not started."""
    return conn.execute(
        select(actions.c.id, actions.c.job_id, actions.c.queued_at.label("since"))
        .where(actions.c.status == ActionStatus.QUEUED.value, actions.c.queued_at < before)
        .order_by(actions.c.id)
        .limit(limit)
    ).all()


def still_queued(conn: Connection, ids: list[int]) -> dict[int, str | None]:
    """id -> job id of those of ``ids`` still queued (see deliveries.still_queued)."""
    if not ids:
        return {}
    found = conn.execute(
        select(actions.c.id, actions.c.job_id).where(
            actions.c.id.in_(ids), actions.c.status == ActionStatus.QUEUED.value
        )
    )
    return dict(found.all())


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
