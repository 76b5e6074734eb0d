"""Running one action: claim it, re-check it, prepare, send, record. Exactly one worker wins.

The claim (``queued -> running``) is committed before anything is sent and
carries a short lease that the worker renews while it lives
(``workers/leases.py``), so a worker killed mid-send leaves a ``running`` row the
scheduler makes due again within seconds, once the lease expires. Just before sending, the
action is checked again against the present (``workers/preparation.py``: cancelled
meanwhile? consent withdrawn? address suppressed? sub-category muted? customer
redacted? too late to be useful?), because hours or days may have passed since it
was planned; the rule's own promises (its ``if`` re-checked, quiet hours and send
window, a disabled rule) are ``workers/promises.py``.

``start`` prepares an action and ``finish`` records what its send made of it; a job
sends one while it prepares the next (``workers/send_ahead.py``). Every way out
is one small function here: ``_skipped`` (Skip), ``_deferred`` (Defer: not yet,
no attempt counted), ``_failed`` (retry with backoff, dead letter, or permanent
failure) and ``_sent``. Each records what happened in the same transaction as the
status change.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from aftersale.core import logs, metrics
from aftersale.core.errors import Defer, DeliveryFailed, PermanentError, TransientError
from aftersale.core.steps import masked
from aftersale.store import actions as action_store
from aftersale.store import messages as message_store
from aftersale.store.actions import ActionStatus
from aftersale.store.sent import record_sent_alone
from aftersale.workers.channels.base import RecipientGone, SendResult
from aftersale.workers.executors import Prepared
from aftersale.workers.job_reads import JobReads
from aftersale.workers.leases import HELD, LEASE
from aftersale.workers.policy import Skip
from aftersale.workers.preparation import prepare
from aftersale.workers.render import TemplateProblem

log = logs.get_logger("workers.actions")

#: a job claims all its actions at once; it starts no new one after this long and hands the
#: rest back, so actions claimed together are not held for long behind slow sends
#: (their short LEASE is renewed meanwhile, see workers/leases.py)
JOB_BUDGET = timedelta(minutes=2, seconds=30)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)


def claim(runtime, action_ids: list[int]) -> dict:
    """Claim a job's actions in one transaction (``queued -> running`` with a lease); {id: row}.

    Only the claims this worker won are returned: an action another worker
    runs, or that was cancelled meanwhile, is left alone.
    """
    with runtime.engine.begin() as conn:
        claimed = action_store.start_many(conn, action_ids, runtime.clock.now(), LEASE)
    HELD.add(claimed)
    for action_id in action_ids:
        if action_id not in claimed:
            log.info("action.not_claimed", action_id=action_id)
    return claimed


def release_held(action_ids) -> None:
    """This process stops renewing these actions' leases (their job ended, however it ended):
    one left renewed by mistake would stay ``running`` for as long as the worker lives."""
    HELD.discard(action_ids)


def hand_back(runtime, actions: list) -> None:
    """Claimed actions this worker will not start after all go back to ``scheduled``, due now."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        for action in actions:
            action_store.defer(conn, action.id, now, now, "job ran past its time budget")
    HELD.discard(action.id for action in actions)
    log.warning("actions.handed_back", count=len(actions))


@dataclass
class Ready:
    """An action prepared and checked, its message about to go out (or going out)."""

    action: object
    executor: object
    prepared: Prepared
    started: float = field(default_factory=time.monotonic)


def start(runtime, conn: Connection, action, reads: JobReads | None) -> Ready | str:
    """Prepare an action this worker holds the lease of: its outcome when it ends here
    (skipped, deferred, failed), else Ready for ``finish`` to send and record.

    A job passes the one connection it runs all its actions on (``conn``):
    checking a pooled connection out and pinging it twice per action was two
    of the fourteen database round trips a mail cost. Each step runs in its
    own short transaction; none is open while the message is sent. ``reads``
    holds what the job's actions read alike (events, customers, orders,
    suppressions), read once (workers/job_reads.py). workers/send_ahead.py sends one action while the
    job prepares the next.
    """
    with _bound(action):
        started = time.monotonic()
        try:
            executor, prepared = prepare(runtime, conn, action, runtime.clock.now(), reads)
        except Exception as exc:
            return _ended(runtime, conn, action, None, exc, started)
        return Ready(action, executor, prepared)


def finish(runtime, conn: Connection, ready: Ready, send) -> str:
    """Record what ``send()`` (the channel's answer, or its error) made of a Ready action."""
    action, prepared = ready.action, ready.prepared
    with _bound(action):
        try:
            result = send()
        except Exception as exc:
            return _ended(runtime, conn, action, prepared, exc, ready.started)
        return _sent(runtime, conn, action, prepared, result, ready.started)


def _bound(action):
    return logs.bound(
        action_id=action.id, rule=action.rule, event_id=action.event_id, shop_id=action.shop_id
    )


def _ended(runtime, conn: Connection, action, prepared, exc: Exception, started: float) -> str:
    """The outcome of an action that did not send; called inside the ``except`` that caught it."""
    if isinstance(exc, Skip):
        return _skipped(runtime, conn, action, exc)
    if isinstance(exc, Defer):
        return _deferred(runtime, conn, action, exc)
    if isinstance(exc, TemplateProblem):
        return _failed(runtime, conn, action, prepared, PermanentError(str(exc)), started)
    if isinstance(exc, DeliveryFailed):
        return _failed(runtime, conn, action, prepared, exc, started)
    if isinstance(exc, SQLAlchemyError):
        raise exc  # the database is the record: the lease brings the action back when it returns
    # A bug or data we did not foresee: recorded as this action's failure with its error,
    # not left running under its lease to be retried into the same exception.
    log.exception("action.crashed", error=logs.describe_error(exc))
    failure = PermanentError(f"unexpected error: {logs.describe_error(exc)}")
    return _failed(runtime, conn, action, prepared, failure, started)


def _sent(
    runtime, conn: Connection, action, prepared: Prepared, result: SendResult, started: float
) -> str:
    duration = int((time.monotonic() - started) * 1000)
    metrics.SEND_SECONDS.labels(prepared.channel).observe(duration / 1000)
    now = runtime.clock.now()
    # Waiting for the disk here halved a worker's rate on PostgreSQL; only a database
    # crash in the next few hundred ms could lose this record, and then the mail is sent
    # again with the same Message-ID (see docs/actions.md). Local to this transaction,
    # not a session setting: behind pgbouncer in transaction mode a session SET would
    # leak to other clients' transactions on the same server connection
    # (docs/deployment.md). One statement, one round trip, on PostgreSQL (store/sent.py).
    won = record_sent_alone(
        conn,
        action,
        channel=prepared.channel,
        now=now,
        recipient=prepared.recipient,
        subject=prepared.subject,
        message_id=prepared.message_id,
        provider_id=result.provider_id,
        result=result.data,
        status_code=result.status_code,
        response=result.response,
        duration_ms=duration,
    )
    if not won:
        log.warning(
            "action.lease_lost",
            detail="sent, but the lease had expired and the action was taken over",
        )
    log.info(
        "action.sent",
        channel=prepared.channel,
        to=_masked(prepared),
        provider_id=result.provider_id,
        duration_ms=duration,
    )
    return ActionStatus.SENT.value


def _failed(
    runtime,
    conn: Connection,
    action,
    prepared: Prepared | None,
    exc: DeliveryFailed,
    started: float,
) -> str:
    now = runtime.clock.now()
    duration = int((time.monotonic() - started) * 1000)
    transient = isinstance(exc, TransientError)
    if not transient:
        status, values = ActionStatus.FAILED, {}
    elif action.attempts >= action.max_attempts:
        status, values = ActionStatus.DEAD, {}
    else:
        status, values = (
            ActionStatus.SCHEDULED,
            {"due_at": now + retry_delay(action.attempts, exc.retry_after)},
        )
    recipient = prepared.recipient if prepared else None
    subject = prepared.subject if prepared else None
    with conn.begin():
        action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            status,
            now,
            last_error=logs.scrub(str(exc))[:2000],
            recipient=recipient,
            subject=subject,
            lease_expires_at=None,
            job_id=None,
            **values,
        )
        message_store.record_attempt(
            conn,
            action=action,
            channel=prepared.channel if prepared else action.action_type,
            now=now,
            status="transient_error" if transient else "permanent_error",
            recipient=recipient,
            subject=subject,
            message_id=prepared.message_id if prepared else None,
            status_code=exc.status_code,
            error=logs.scrub(str(exc)),
            response=exc.response,
            duration_ms=duration,
        )
        if isinstance(exc, RecipientGone) and recipient:
            message_store.suppress(
                conn,
                action.shop_id,
                prepared.channel,
                recipient,
                exc.reason,
                f"action {action.id}",
                now,
                keys=runtime.config.secret_keys,
            )
    event = (
        "action.retry_scheduled" if status is ActionStatus.SCHEDULED else f"action.{status.value}"
    )
    log.warning(
        event,
        error=logs.scrub(str(exc)),
        status_code=exc.status_code,
        attempts=action.attempts,
        max_attempts=action.max_attempts,
        due_at=str(values.get("due_at", "")),
    )
    return status.value


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter (1m, 2m, 4m, ... up to 6h), never sooner than Retry-After."""
    ceiling = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    delay = ceiling * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def _skipped(runtime, conn: Connection, action, skip: Skip) -> str:
    with conn.begin():
        action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            ActionStatus.SKIPPED,
            runtime.clock.now(),
            lease_expires_at=None,
            skip_reason=skip.reason,
            last_error=skip.detail or None,
        )
    log.info("action.skipped", reason=skip.reason, detail=skip.detail)
    return ActionStatus.SKIPPED.value


def _deferred(runtime, conn: Connection, action, defer: Defer) -> str:
    with conn.begin():
        action_store.defer(conn, action.id, defer.until, runtime.clock.now(), defer.reason)
    log.info("action.deferred", until=defer.until.isoformat(), reason=defer.reason)
    return "deferred"


def _masked(prepared: Prepared) -> str | None:
    return masked(prepared.channel, prepared.recipient)
