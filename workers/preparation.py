"""What an action needs before its send, read and checked against the present.

Hours or days may have passed since the action was planned: its event may be
gone, its customer redacted, an earlier step of its rule still pending or
failed, the customer's preferences or the shop's frequency cap against it.
Each such finding raises Skip or Defer, which workers/actions.py records.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from aftersale.core.errors import Defer
from aftersale.core.events import Event
from aftersale.rules import pipeline
from aftersale.rules.settings import shop_settings
from aftersale.store import action_queries
from aftersale.store.actions import FINAL, ActionStatus
from aftersale.store.sql import autocommit
from aftersale.workers import promises
from aftersale.workers.executors import EXECUTORS, ActionContext
from aftersale.workers.job_reads import JobReads
from aftersale.workers.policy import Skip, check_frequency_cap, check_preferences
from aftersale.workers.template_recommend import SOURCE_KEY
from aftersale.workers.template_recommend import source_for as recommendation_source

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


def prepare(runtime, conn: Connection, action, now: datetime, reads: JobReads | None):
    """Everything the send needs, read before the send with no transaction left open.

    On PostgreSQL the reads run outside a transaction (autocommit): under READ
    COMMITTED each statement has its own snapshot anyway, so the BEGIN and
    ROLLBACK around them were two round trips per mail that bought nothing.
    SQLite keeps its transaction (its reads go through BEGIN IMMEDIATE, db.py).
    """
    if conn.dialect.name == "postgresql":
        with autocommit(conn):
            return _prepare_in(runtime, conn, action, now, reads or _NO_READS)
    try:
        return _prepare_in(runtime, conn, action, now, reads or _NO_READS)
    finally:
        conn.rollback()  # reads only: nothing is held open while the message goes out


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
    kept = promises.before_send(runtime, conn, action, event, customer, settings, now, reads)
    context = _template_context(action, event, shop, settings, kept, steps)
    context[SOURCE_KEY] = recommendation_source(conn, shop.id, event)  # issue 25
    ctx = ActionContext(action, event, shop, customer, context, settings, reads)
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
        shop_names=settings.shop_name_by_language,
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
