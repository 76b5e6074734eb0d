"""The one pipeline: a delivery becomes judged events and planned actions, the same everywhere.

Production (``workers/processing``), link clicks (``webhooks/links``) and
``aftersale rules test`` (``rules/simulate``) all run a delivery through
these functions on a database connection: ``rules test`` on a throw-away
transaction (of the configured database, or of an in-memory one), rolled back
at the end. So a repeated delivery plans once, history facts and once-per
keys come from what is stored, and consent is what production will check:
there is one way, not three, for a payload to become actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from aftersale.connectors import get_connector
from aftersale.connectors.base import DeliveryMeta, Normalized, OrderState
from aftersale.core import logs
from aftersale.core.events import Event
from aftersale.rules.engine import PlannedAction, plan
from aftersale.rules.history import customer_history, with_history
from aftersale.store import events as event_store
from aftersale.store import planning
from aftersale.store import state as state_store
from aftersale.store.fit import fit_row
from aftersale.store.tables import actions as actions_table

log = logs.get_logger("rules.pipeline")


@dataclass
class Handled:
    """What one event did: stored (or a duplicate), judged, cancelled, released, planned."""

    event: Event
    judged: Event  # as the rules saw it: the customer with history facts
    event_id: int | None
    duplicate: bool = False
    planned: list[PlannedAction] = field(default_factory=list)
    created: list[tuple[int, str]] = field(default_factory=list)  # (action id, status)
    cancelled: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)

    @property
    def due(self) -> list[int]:
        """Actions to hand to RQ after the commit: released waits and new ones due now."""
        return self.released + [a for a, status in self.created if status == "queued"]


def delivery_meta(shop, row) -> DeliveryMeta:
    """The meta of a stored delivery row (or anything shaped like one)."""
    return DeliveryMeta(
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


def run_delivery(
    conn, ruleset, shop, meta: DeliveryMeta, payload: dict, delivery_pk: int | None, now
) -> tuple[Normalized, list[Handled]]:
    """Normalize a delivery against the order's stored state and handle each of its events."""
    connector = get_connector(shop.platform)
    order_ref = connector.order_ref(meta.topic, payload)
    state = state_store.lock_order(conn, shop.id, order_ref)
    result = connector.normalize(meta, payload, state)
    if result.state is not None and order_ref:
        state_store.save_order(conn, shop.id, order_ref, result.state, now)
    handled = [
        handle_event(
            conn,
            ruleset,
            shop,
            delivery_pk,
            enrich(conn, shop.id, event, result.state or state, now),
            now,
        )
        for event in result.events
    ]
    return result, handled


def handle_event(conn, ruleset, shop, delivery_pk: int | None, event: Event, now: datetime):
    """Store one event, cancel and release what it ends, plan what its rules say.

    Returns a :class:`Handled` record; a repeated event (same key) is stored once
    and plans nothing, in production and in ``rules test`` alike.
    """
    event_id = event_store.insert_event(conn, shop.id, delivery_pk, event, now)
    if event_id is None:
        log.info("event.duplicate", kind=event.kind, key=event.key)
        return Handled(event, event, None, duplicate=True)
    with logs.bound(event_id=event_id, kind=event.kind):
        cancelled = planning.cancel_for_event(conn, shop.id, event.order_ref, event.kind, now)
        if cancelled:
            log.info("actions.cancelled", action_ids=cancelled, by=event.kind)
        released = planning.release_waiting(
            conn, shop.id, event.order_ref, event.kind, event.occurred_at, now
        )
        if released:
            log.info("actions.wait_over", action_ids=released, by=event.kind)
        judged = with_customer_history(conn, ruleset, shop.id, event)
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
        created = planning.create(conn, rows, now)
        for action_id, status in created:
            log.info("action.planned", action_id=action_id, status=status)
        if len(created) < len(rows):
            log.info("actions.already_planned", count=len(rows) - len(created))
    return Handled(
        event,
        judged,
        event_id,
        planned=planned,
        created=created,
        cancelled=cancelled,
        released=released,
    )


def with_customer_history(conn, ruleset, shop_id: int, event: Event) -> Event:
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
    statuses = planning.COUNTED if rule.mode == "single" else planning.DONE
    if rule.once_per != "event" and planning.acted_within(
        conn, shop.id, rule.name, rule.once_per, ref, since, statuses
    ):
        log.info("action.once_per", rule=rule.name, subject=rule.once_per, mode=rule.mode)
        return True
    if rule.mode == "restart" and planned.step.index == 0:
        replaced = planning.restart_pending(conn, shop.id, rule.name, rule.once_per, ref, now)
        if replaced:
            log.info("actions.restarted", rule=rule.name, action_ids=replaced)
    return False


def enrich(conn, shop_id: int, event: Event, state: OrderState, now: datetime) -> Event:
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


def template_context(
    event: Event,
    *,
    shop_domain: str,
    shop_name: str,
    customer: dict,
    action_id: int = 0,
    rule: str = "preview",
    steps: dict | None = None,
    timezone: str = "UTC",
) -> dict:
    """What templates see, built one way for a real send, a preview and ``rules test``.

    ``timezone`` is the shop's: dates in messages are the shop's dates.
    """
    context = event.context()
    context["timezone"] = timezone
    context["customer"] = customer
    context["shop"] = {"domain": shop_domain, "name": shop_name or shop_domain}
    context["action"] = {"id": action_id, "rule": rule}
    context["steps"] = steps or {}
    for result in context["steps"].values():
        if result["step_type"] == "discount_code":
            context["discount"] = result
    return context
