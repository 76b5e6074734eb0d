"""Running one action: claim it, re-check it, prepare, send, record. Exactly one worker wins.

The claim (``queued -> running``) is committed before anything is sent and
carries a short lease that the worker renews while it lives
(``workers/leases.py``), so a worker killed mid-send leaves a ``running`` row the
scheduler makes due again within seconds, once the lease expires. Just before sending, the
action is checked again against the present (cancelled meanwhile? consent
withdrawn? address suppressed? sub-category muted? customer redacted? too late
to be useful?),
because hours or days may have passed since it was planned; the rule's own promises
(its ``if`` re-checked, quiet hours and send window, a disabled rule) are
``workers/promises.py``.

Every way out of a run is one small function here: ``_skipped`` (Skip),
``_deferred`` (Defer: not yet, no attempt counted), ``_failed`` (retry with
backoff, dead letter, or permanent failure) and ``_sent``. Each records what
happened in the same transaction as the status change.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from aftersale.core import logs, metrics
from aftersale.core.errors import Defer, DeliveryFailed, PermanentError, TransientError
from aftersale.core.events import Event
from aftersale.core.steps import masked
from aftersale.rules import pipeline
from aftersale.rules.settings import shop_settings
from aftersale.store import action_queries
from aftersale.store import actions as action_store
from aftersale.store import messages as message_store
from aftersale.store.actions import FINAL, ActionStatus
from aftersale.store.sql import commit_without_flush_wait
from aftersale.workers import promises
from aftersale.workers.channels.base import RecipientGone, SendResult
from aftersale.workers.executors import EXECUTORS, ActionContext, Prepared
from aftersale.workers.job_reads import JobReads
from aftersale.workers.leases import HELD, LEASE
from aftersale.workers.policy import Skip, check_frequency_cap, check_preferences
from aftersale.workers.render import TemplateProblem
from aftersale.workers.template_recommend import SOURCE_KEY
from aftersale.workers.template_recommend import source_for as recommendation_source

log = logs.get_logger("workers.actions")

#: a job claims all its actions at once; it starts no new one after this long and hands the
#: rest back, so actions claimed together are not held for long behind slow sends
#: (their short LEASE is renewed meanwhile, see workers/leases.py)
JOB_BUDGET = timedelta(minutes=2, seconds=30)
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
#: how long a step waits before looking again at an earlier step it needs
DEPENDENCY_WAIT = timedelta(seconds=30)
CUSTOMER_KEYS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "accepts_email_marketing",
    "accepts_sms_marketing",
)


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


def run_claimed(
    runtime, action, conn: Connection | None = None, reads: JobReads | None = None
) -> str:
    """Run an action this worker holds the lease of.

    A job passes the one connection it runs all its actions on (``conn``):
    checking a pooled connection out and pinging it twice per action was two
    of the fourteen database round trips a mail cost. Each step still runs in
    its own short transaction; none is open while the message is sent. ``reads``
    holds the events and customers of the job's actions, read once
    (workers/job_reads.py).
    """
    with logs.bound(
        action_id=action.id, rule=action.rule, event_id=action.event_id, shop_id=action.shop_id
    ):
        try:
            if conn is not None:
                return _run_claimed(runtime, conn, action, runtime.clock.now(), reads)
            with runtime.engine.connect() as own:
                return _run_claimed(runtime, own, action, runtime.clock.now(), reads)
        finally:  # recorded, or left running for its lease to bring back: no longer renewed
            HELD.discard((action.id,))


def _run_claimed(runtime, conn: Connection, action, now: datetime, reads) -> str:
    prepared = None
    started = time.monotonic()
    try:
        executor, prepared = _prepare(runtime, conn, action, now, reads)
        started = time.monotonic()
        result = executor.send(runtime, prepared)
    except Skip as skip:
        return _skipped(runtime, conn, action, skip)
    except Defer as defer:
        return _deferred(runtime, conn, action, defer)
    except TemplateProblem as exc:
        return _failed(runtime, conn, action, prepared, PermanentError(str(exc)), started)
    except DeliveryFailed as exc:
        return _failed(runtime, conn, action, prepared, exc, started)
    except SQLAlchemyError:
        raise  # the database is the record: the lease brings the action back when it returns
    except Exception as exc:
        # A bug or data we did not foresee: recorded as this action's failure with its error,
        # not left running under its lease to be retried into the same exception.
        log.exception("action.crashed", error=logs.describe_error(exc))
        failure = PermanentError(f"unexpected error: {logs.describe_error(exc)}")
        return _failed(runtime, conn, action, prepared, failure, started)
    return _sent(runtime, conn, action, prepared, result, started)


def _sent(
    runtime, conn: Connection, action, prepared: Prepared, result: SendResult, started: float
) -> str:
    duration = int((time.monotonic() - started) * 1000)
    metrics.SEND_SECONDS.labels(prepared.channel).observe(duration / 1000)
    now = runtime.clock.now()
    with conn.begin():
        # Waiting for the disk here halved a worker's rate on PostgreSQL; only a database
        # crash in the next few hundred ms could lose this record, and then the mail is sent
        # again with the same Message-ID (see docs/actions.md). SET LOCAL, not a session
        # setting: behind pgbouncer in transaction mode a session SET would leak to other
        # clients' transactions on the same server connection (docs/deployment.md).
        commit_without_flush_wait(conn)
        won = action_store.transition(
            conn,
            action.id,
            ActionStatus.RUNNING,
            ActionStatus.SENT,
            now,
            recipient=prepared.recipient,
            subject=prepared.subject,
            provider_id=result.provider_id,
            result=result.data,
            lease_expires_at=None,
            last_error=None,
        )
        message_store.record_attempt(
            conn,
            action=action,
            channel=prepared.channel,
            status="sent",
            now=now,
            recipient=prepared.recipient,
            subject=prepared.subject,
            message_id=prepared.message_id,
            provider_id=result.provider_id,
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


def _prepare(runtime, conn: Connection, action, now: datetime, reads: JobReads | None):
    """Everything the send needs, read before the send with no transaction left open.

    On PostgreSQL the reads run outside a transaction (autocommit): under READ
    COMMITTED each statement has its own snapshot anyway, so the BEGIN and
    ROLLBACK around them were two round trips per mail that bought nothing.
    SQLite keeps its transaction (its reads go through BEGIN IMMEDIATE, db.py).
    """
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        return _prepare_in(runtime, conn, action, now, reads or _NO_READS)
    finally:
        conn.rollback()  # reads only: nothing is held open while the message goes out
        if postgres:
            conn.execution_options(isolation_level=conn.default_isolation_level)


def _prepare_in(runtime, conn: Connection, action, now: datetime, reads: JobReads):
    if action.deadline_at and now > action.deadline_at:
        raise Skip(
            "late", f"due {action.due_at.isoformat()}, deadline {action.deadline_at.isoformat()}"
        )
    executor = EXECUTORS.get(action.action_type)
    if executor is None:
        raise Skip("unsupported", f"no executor for {action.action_type!r}")
    event = reads.event(conn, action.event_id) if action.event_id else None
    if event is None:
        raise Skip("event_missing", "the event that caused this action is gone")
    shop = runtime.shop(conn, action.shop_id)
    customer = _current_customer(conn, action, event, reads)
    steps = _earlier_results(conn, action, now)
    settings = shop_settings(runtime.rules, shop)
    kept = promises.before_send(runtime, conn, action, event, customer, settings, now)
    context = _template_context(action, event, shop, settings, kept, steps)
    context[SOURCE_KEY] = recommendation_source(conn, shop.id, event)  # issue 25
    ctx = ActionContext(action, event, shop, customer, context, settings)
    rule = runtime.rules.get(action.rule)
    check_preferences(conn, rule, action)
    check_frequency_cap(conn, settings, rule, action, now, release=kept.release)
    return executor, executor.prepare(runtime, conn, ctx)


#: no job's reads: each action reads its own event and customer
_NO_READS = JobReads.none()


def _earlier_results(conn, action, now: datetime) -> dict[int, dict]:
    """Results of the earlier steps of this rule that later steps may use (a discount code).

    Such a step still pending defers this one; one that ended without a
    result skips it, rather than sending a mail that promises a missing code.
    """
    results: dict[int, dict] = {}
    for row in action_queries.earlier_steps(conn, action):
        executor = EXECUTORS.get(row.action_type)
        if executor is None or not executor.provides_result:
            continue
        if row.status == ActionStatus.SENT.value:
            results[row.step] = {**(row.result or {}), "step_type": row.action_type}
        elif row.status in FINAL:
            raise Skip(
                "dependency_failed",
                f"step {row.step} ({row.action_type}, action {row.id}) ended {row.status}",
            )
        else:  # look again shortly after it is due (it may be waiting out a retry backoff)
            until = max(now, row.due_at) + DEPENDENCY_WAIT
            raise Defer(until, f"waiting for step {row.step} ({row.action_type})")
    return results


def _current_customer(conn, action, event: Event, reads: JobReads) -> dict:
    customer = dict(event.customer or {})
    ref = action.customer_ref or event.customer_ref
    if ref:
        row = reads.customer(conn, action.shop_id, ref)
        if row is not None:
            if row.redacted_at:
                raise Skip("customer_redacted", "the customer's data was redacted")
            customer.update(
                {k: getattr(row, k) for k in CUSTOMER_KEYS if getattr(row, k) is not None}
            )
    return customer


def _template_context(action, event: Event, shop, settings, kept, steps: dict) -> dict:
    return pipeline.template_context(
        event,
        shop_domain=shop.domain,
        shop_name=settings.shop_name,
        customer=kept.customer,
        action_id=action.id,
        rule=action.rule,
        steps=steps,
        timezone=settings.timezone,
        logo_url=settings.logo_url,
        to=action.params.get("to", "customer"),
        order_now=kept.order_now,
        digest=kept.digest,
    )


def _masked(prepared: Prepared) -> str | None:
    return masked(prepared.channel, prepared.recipient)
