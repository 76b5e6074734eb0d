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
from aftersale.rules import catalog_facts, estimates, verdicts
from aftersale.rules.engine import PlannedAction, once_subject, plan
from aftersale.rules.history import customer_history, with_history
from aftersale.rules.recipients import email_for
from aftersale.rules.timing import recipient_zone, release_at
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
    joined: list[int] = field(default_factory=list)  # open digests this event joined

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
        via=getattr(row, "source", None),
    )


def run_delivery(
    conn, ruleset, shop, meta: DeliveryMeta, payload: dict, delivery_pk: int | None, now
) -> tuple[Normalized, list[Handled]]:
    """Normalize a delivery against the order's stored state and handle each of its events."""
    connector = get_connector(shop.platform)
    # the shop's connector settings (WooCommerce's plugin meta keys), from settings.yaml
    options = ruleset.settings_for(shop.domain).platforms.get(shop.platform)
    if options:
        meta = replace(meta, options=options)
    delivery = ruleset.settings_for(shop.domain).delivery
    meta = replace(meta, delivery=delivery)  # what the store's order statuses mean
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
    estimates.follow(conn, shop.id, delivery, result.events, result.state, now)
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
    ids = {"event_id": event_id, "kind": event.kind, "order": event.order_ref}
    with logs.bound(**ids, customer=event.customer_ref):
        log.info("event.stored", key=event.key)
        cancelled = planning.cancel_for_event(conn, shop.id, event.order_ref, event.kind, now)
        cancelled += planning.cancel_for_customer(
            conn, shop.id, event.customer_ref, event.kind, now
        )
        if cancelled:
            log.info("actions.cancelled", action_ids=cancelled, by=event.kind)
        released = planning.release_waiting(
            conn,
            shop.id,
            event.order_ref,
            event.kind,
            event.occurred_at,
            now,
            adjust=_release_timing(ruleset, event),
        )
        if released:
            log.info("actions.wait_over", action_ids=released, by=event.kind)
        judged = with_customer_history(conn, ruleset, shop.id, event)
        verdicts.judge(conn, ruleset, shop.id, event_id, judged, now)
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
                    "subcategory": p.rule.subcategory,
                    "order_ref": event.order_ref,
                    "customer_ref": event.customer_ref,
                    "fulfillment_ref": event.fulfillment_ref,
                    "once_key": f"{shop.id}|{p.once_key}",
                    "due_at": p.due_at,
                    "deadline_at": p.deadline_at,
                    "wait_for": p.waiting,
                    "cancel_on": sorted(p.rule.cancel_on),
                    **promise_columns(p, event, event_id),
                },
            )
            for p in planned
        ]
        rows, joined = planning.join_digests(conn, rows, now)
        for action_id in joined:
            log.info("action.digest_joined", action_id=action_id)
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
        joined=joined,
    )


def promise_columns(planned: PlannedAction, event: Event, event_id: int) -> dict:
    """The columns issue 22 added to an action: rule version, lifecycle, scoped cancels and
    the digest this event opens (``join_digests`` folds it into an open one instead)."""
    rule = planned.rule
    values = {"rule_version": rule.version or None, "on_disable": rule.on_disable}
    if rule.cancel_on_customer:  # absent, not JSON null: the cancel query skips SQL NULL
        values["cancel_on_customer"] = sorted(rule.cancel_on_customer)
    if planned.digest_key is not None:
        values["digest_key"] = planned.digest_key
        values["digest"] = {
            "closes_at": planned.digest_closes_at.isoformat(),
            "events": [digest_member(rule, event, event_id)],
        }
    return values


def digest_member(rule, event: Event, event_id: int) -> dict:
    """One event of a digest, as the action lists it (the subject keeps once_per inside it)."""
    return {
        "event_id": event_id,
        "kind": event.kind,
        "key": event.key,
        "occurred_at": event.occurred_at.isoformat(),
        "subject": once_subject(rule, event),
    }


def _release_timing(ruleset, event: Event):
    """``wait_for`` release: the new due time obeys the rule's quiet hours and send window,
    in the recipient's zone (the store calls this for each released action)."""

    def adjust(rule_name: str, action_type: str, due: datetime) -> datetime:
        rule = ruleset.get(rule_name)
        if rule is None:
            return due
        settings = ruleset.settings_for(event.shop)
        zone = recipient_zone(event.order, event.customer, settings.timezone, due)
        return release_at(rule, settings, due, zone, action_type)

    return adjust


def with_customer_history(conn, ruleset, shop_id: int, event: Event) -> Event:
    """The event as rules judge it: the customer with history facts, when a rule asks for them.

    Only planning sees them; the stored event stays what the platform said. The catalog
    facts (repurchase due, types bought, recommendations; rules/catalog_facts.py) come last.
    """
    if ruleset.needs_history and event.customer_ref:
        rows = event_store.customer_orders(conn, shop_id, event.customer_ref)
        history = customer_history(rows, event.order_ref)
        event = replace(event, customer=with_history(event.customer, history))
    return catalog_facts.judged(conn, ruleset, shop_id, event)


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
    # product type, tags and image of each line item, from the stored catalog (issue 25)
    filled = catalog_facts.fill_order(conn, shop_id, changes.get("order") or event.order)
    if filled is not None:
        changes["order"] = filled
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
    logo_url: str | None = None,
    to: str | None = "auto",
    order_now: dict | None = None,
    digest: list | None = None,
    shop_names: dict | None = None,
) -> dict:
    """What templates see, built one way for a real send, a preview and ``rules test``.

    ``timezone`` is the shop's: dates in messages are the shop's dates. ``recipient``
    is the email address the mail goes to (rules/recipients.py), read from the order as
    it is now (``order_now``) when known; ``digest`` lists the events a digest folded.
    ``shop_names`` (settings' ``shop_name_by_language``) are the shop's name as written in
    some languages; the renderer puts the one of the message's language in ``shop.name``.
    """
    context = event.context()
    context.pop("recommendations", None)  # a judged count; templates call recommendations(n)
    context["timezone"] = timezone
    context["customer"] = customer
    context["recipient"] = {"email": email_for(to, order_now or event.order, customer)}
    context["digest"] = digest or []
    context["shop"] = {
        "domain": shop_domain,
        "name": shop_name or shop_domain,
        "logo_url": logo_url,  # settings.yaml logo_url
        "names": dict(shop_names or {}),
    }
    context["action"] = {"id": action_id, "rule": rule}
    context["steps"] = steps or {}
    for result in context["steps"].values():
        if result["step_type"] == "discount_code":
            context["discount"] = result
    return context
