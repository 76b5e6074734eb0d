"""Processing one stored delivery: normalize, remember, decide. One transaction, all or nothing.

The delivery row is claimed, the order's state locked, events stored
(deduplicated by their key), pending actions cancelled where a rule says so,
and new actions planned, all in one transaction: a crash anywhere leaves the
delivery unprocessed, to be processed again, with nothing half-recorded.
Actions already due are handed to RQ right after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson
from redis.exceptions import RedisError

from aftersale.connectors import get_connector
from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.core import logs
from aftersale.core.events import Event
from aftersale.rules import plan
from aftersale.rules.history import customer_history, with_history
from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store import events as event_store
from aftersale.store import shops as shop_store
from aftersale.store import state as state_store
from aftersale.store.fit import fit_row
from aftersale.store.queues import by_job, enqueue_actions
from aftersale.store.tables import actions as actions_table

log = logs.get_logger("workers.processing")
MAX_DELIVERY_ATTEMPTS = 5
OUTCOME_STATUS = {"processed": "processed", "no_change": "processed", "stale": "stale"}


@dataclass
class Processed:
    status: str  # processed | stale | ignored | skipped (already done by another job)
    due_actions: list[int] = field(default_factory=list)  # created queued: hand to RQ after commit


def process_delivery(runtime, delivery_id: int) -> str:
    """Process one delivery and hand its due actions to RQ; returns its final status."""
    result = process_one(runtime, delivery_id)
    hand_off_actions(runtime, result.due_actions)
    return result.status


def process_one(runtime, delivery_id: int) -> Processed:
    """Process one delivery in one transaction; the caller hands ``due_actions`` to RQ.

    Raises whatever processing raised, after recording the failure on the
    delivery row (it is retried by the relay, then marked ``failed``).
    """
    now = runtime.clock.now()
    ruleset = runtime.rules
    try:
        with runtime.engine.begin() as conn:
            row = delivery_store.claim(conn, delivery_id)
            if row is None:
                log.info("delivery.already_processed", delivery=delivery_id)
                return Processed("skipped")
            shop = shop_store.get_shop(conn, row.shop_id)
            logs.bind(shop=shop.domain, platform=shop.platform, delivery=row.id, topic=row.topic)
            status, queued = _process(conn, runtime, ruleset, shop, row, now)
    except Exception as exc:
        _record_failure(runtime, delivery_id, exc, now)
        raise
    finally:
        logs.clear()
    return Processed(status, queued)


def _process(conn, runtime, ruleset, shop, row, now: datetime) -> tuple[str, list[int]]:
    connector = get_connector(shop.platform)
    meta = DeliveryMeta(
        platform=shop.platform,
        shop=shop.domain,
        topic=row.topic,
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        api_version=row.api_version,
        triggered_at=row.triggered_at,
        headers=row.headers or {},
        received_at=row.received_at,
    )
    payload = orjson.loads(row.body)
    order_ref = connector.order_ref(row.topic, payload)
    state = state_store.lock_order(conn, shop.id, order_ref)
    result = connector.normalize(meta, payload, state)
    if result.state is not None and order_ref:
        state_store.save_order(conn, shop.id, order_ref, result.state, now)
    queued: list[int] = []
    for event in result.events:
        queued += _handle_event(
            conn,
            ruleset,
            shop,
            row.id,
            _enrich(conn, shop.id, event, result.state or state, now),
            now,
        )
    status = OUTCOME_STATUS.get(result.outcome, "ignored")
    delivery_store.finish(conn, row.id, status, now, note=_note(result))
    log.info(
        "delivery.processed",
        status=status,
        outcome=result.outcome,
        events=len(result.events),
        actions_due=len(queued),
        detail=result.detail,
    )
    if result.warnings:
        log.warning("delivery.odd_payload", warnings=result.warnings)
    return status, queued


def _handle_event(conn, ruleset, shop, delivery_pk: int, event: Event, now: datetime) -> list[int]:
    event_id = event_store.insert_event(conn, shop.id, delivery_pk, event, now)
    if event_id is None:
        log.info("event.duplicate", kind=event.kind, key=event.key)
        return []
    with logs.bound(event_id=event_id, kind=event.kind):
        cancelled = action_store.cancel_for_event(conn, shop.id, event.order_ref, event.kind, now)
        if cancelled:
            log.info("actions.cancelled", action_ids=cancelled, by=event.kind)
        released = action_store.release_waiting(
            conn, shop.id, event.order_ref, event.kind, event.occurred_at, now
        )
        if released:
            log.info("actions.wait_over", action_ids=released, by=event.kind)
        judged = _with_customer_history(conn, ruleset, shop.id, event)
        planned = [
            p for p in plan(ruleset, judged, now) if not _acted_recently(conn, shop, event, p, now)
        ]
        rows = [
            fit_row(
                actions_table,
                {
                    "shop_id": shop.id,
                    "event_id": event_id,
                    "rule": p.rule.name,
                    "step": p.step.index,
                    "action_type": p.step.type,
                    "params": p.step.params,
                    "category": p.rule.category,
                    "order_ref": event.order_ref,
                    "customer_ref": event.customer_ref,
                    "fulfillment_ref": event.fulfillment_ref,
                    "once_key": f"{shop.id}|{p.once_key}",
                    "due_at": p.due_at,
                    "deadline_at": p.deadline_at,
                    "wait_for": p.waiting,
                    "cancel_on": sorted(p.rule.cancel_on),
                },
            )
            for p in planned
        ]
        created = action_store.create(conn, rows, now)
        for action_id, status in created:
            log.info("action.planned", action_id=action_id, status=status)
        if len(created) < len(rows):
            log.info("actions.already_planned", count=len(rows) - len(created))
    return released + [action_id for action_id, status in created if status == "queued"]


def _with_customer_history(conn, ruleset, shop_id: int, event: Event) -> Event:
    """The event as rules judge it: the customer with history facts, when a rule asks for them.

    Only planning sees them; the stored event stays what the platform said.
    """
    if not ruleset.needs_history or not event.customer_ref:
        return event
    rows = event_store.customer_orders(conn, shop_id, event.customer_ref)
    history = customer_history(rows, event.order_ref)
    return replace(event, customer=with_history(event.customer, history))


def _acted_recently(conn, shop, event: Event, planned, now: datetime) -> bool:
    """Whether a trigger is ignored: ``once_per`` with a window, or ``mode`` restart/queued
    after the rule already acted on the subject. ``mode: restart`` replaces what is pending."""
    rule = planned.rule
    if rule.once_within is None and rule.mode == "single":
        return False
    ref = {
        "order": event.order_ref,
        "customer": event.customer_ref,
        "fulfillment": event.fulfillment_ref,
    }.get(rule.once_per)
    since = now - rule.once_within if rule.once_within is not None else None
    statuses = action_store.COUNTED if rule.mode == "single" else action_store.DONE
    if rule.once_per != "event" and action_store.acted_within(
        conn, shop.id, rule.name, rule.once_per, ref, since, statuses
    ):
        log.info("action.once_per", rule=rule.name, subject=rule.once_per, mode=rule.mode)
        return True
    if rule.mode == "restart" and planned.step.index == 0:
        replaced = action_store.restart_pending(conn, shop.id, rule.name, rule.once_per, ref, now)
        if replaced:
            log.info("actions.restarted", rule=rule.name, action_ids=replaced)
    return False


def _enrich(conn, shop_id: int, event: Event, state: OrderState, now: datetime) -> Event:
    """Fill in what the payload lacked from what is stored: the order, and the customer's
    consent and contact details kept from earlier deliveries."""
    changes = {}
    if event.order is None and state.order:
        changes["order"] = state.order
    customer = event.customer
    order = changes.get("order") or event.order or {}
    if customer and customer.get("id"):
        changes["customer"] = state_store.remember_customer(
            conn, shop_id, customer, now, event.warnings
        )
    elif customer is None and order.get("customer_id"):
        row = state_store.get_customer(conn, shop_id, order["customer_id"])
        if row is not None:
            changes["customer"] = {
                k: v
                for k, v in {
                    "id": row.customer_ref,
                    "email": row.email,
                    "phone": row.phone,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "locale": row.locale,
                    "accepts_email_marketing": row.accepts_email_marketing,
                    "accepts_sms_marketing": row.accepts_sms_marketing,
                }.items()
                if v is not None
            }
    return replace(event, **changes) if changes else event


def _note(result) -> str | None:
    if result.outcome == "processed":
        return None
    return f"{result.outcome}: {result.detail}" if result.detail else result.outcome


def _record_failure(runtime, delivery_id: int, exc: Exception, now: datetime) -> None:
    error = logs.describe_error(exc, limit=2000)
    try:
        with runtime.engine.begin() as conn:
            status = delivery_store.record_failure(
                conn, delivery_id, error, now, MAX_DELIVERY_ATTEMPTS
            )
    except Exception:
        log.exception("delivery.failure_not_recorded", delivery=delivery_id)
        return
    log.error(
        "delivery.processing_failed", delivery=delivery_id, error=error, status=status, exc_info=exc
    )


def hand_off_actions(runtime, ids: list[int]) -> None:
    """Enqueue actions created due; if Redis fails they stay queued and the scheduler re-enqueues them."""
    if not ids:
        return
    try:
        jobs = by_job(enqueue_actions(runtime, ids))
    except RedisError as exc:
        # They stay queued in the database; the scheduler re-enqueues lost jobs.
        log.warning("actions.enqueue_deferred", count=len(ids), error=str(exc))
        return
    with runtime.engine.begin() as conn:
        action_store.set_jobs(conn, jobs, runtime.clock.now())
