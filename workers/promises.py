"""The checks that make a delayed action keep its rule's promises, just before sending.

Hours or days may pass between planning and sending. Before a message goes out:

1. **Lifecycle.** A rule switched off (``enabled: false``) or removed from the
   folder: with ``on_disable: cancel`` its pending actions are skipped
   (``rule_disabled`` / ``rule_removed``); with ``drain`` (the default) they go out
   as planned. A removed rule is judged by the ``on_disable`` the action recorded.
2. **Re-check.** An action that waited re-evaluates its rule's ``if`` against the
   order and customer as they are now (tags added, refunds, a second order), unless
   the rule says ``recheck: false``; a failing check skips it as ``condition_changed``
   with the check and the value it saw.
3. **Timing.** Quiet hours and the rule's ``send_at`` window, in the recipient's
   time zone: inside them the action is deferred (no attempt counted) to the first
   moment allowed. Every path to "due" ends here, so a ``wait_for`` release or
   timeout, a frequency-cap deferral, a retry or a manual retry obey them alike.

It also gathers what templates need that the event alone lacks: the order as it is
now (for the recipient), the customer's history facts as of the event (the welcome
line of a first order), and the events a digest folded into this action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aftersale.core.errors import Defer
from aftersale.core.events import Event
from aftersale.core.steps import MESSAGE_STEPS
from aftersale.rules.history import customer_history, with_history
from aftersale.rules.recheck import recheck_reason, waited
from aftersale.rules.timing import recipient_zone, release_at
from aftersale.store import events as event_store
from aftersale.workers.policy import Skip


@dataclass
class SendState:
    """What the checks learned, for the template context and later checks."""

    rule: object | None
    order_now: dict | None
    zone: str
    customer: dict  # with history facts as of the event, for templates
    digest: list | None = None

    def release(self, settings, moment: datetime, action_type: str) -> datetime:
        """``moment`` moved out of quiet hours and into the send window (a cap deferral)."""
        if self.rule is None:
            return moment
        return release_at(self.rule, settings, moment, self.zone, action_type)


def before_send(
    runtime, conn, action, event: Event, customer: dict, settings, now, reads
) -> SendState:
    """Run the checks above; raise Skip or Defer, else return the :class:`SendState`.

    ``reads`` (workers/job_reads.py) holds the order's current state and the
    customer's orders as the job read them, or reads them now.
    """
    rule = runtime.rules.get(action.rule)
    check_lifecycle(rule, action)
    order_now = reads.order(conn, action.shop_id, action.order_ref)
    if rule is not None and rule.recheck and waited(action):
        recheck(conn, runtime.rules, rule, action, event, order_now, customer, now)
    zone = recipient_zone(order_now or event.order, customer, settings.timezone, now)
    if rule is not None:
        allowed = release_at(rule, settings, now, zone, action.action_type)
        if allowed > now:
            raise Defer(allowed, f"quiet hours or send window ({zone})")
    state = SendState(rule, order_now, zone, customer)
    if action.action_type in MESSAGE_STEPS:
        state.customer = history_as_of(conn, action.shop_id, event, customer, reads)
    if action.digest:
        state.digest = digest_events(conn, action.digest)
    return state


def check_lifecycle(rule, action) -> None:
    """A disabled or removed rule's pending action: skipped with ``on_disable: cancel``."""
    if rule is None:
        if action.on_disable == "cancel":
            raise Skip("rule_removed", f"rule {action.rule!r} was removed (on_disable: cancel)")
        return
    if not rule.enabled and rule.on_disable == "cancel":
        raise Skip("rule_disabled", f"rule {rule.name!r} is disabled (on_disable: cancel)")


def recheck(conn, ruleset, rule, action, event: Event, order_now, customer, now) -> None:
    """Re-evaluate the rule's ``if`` against the present; Skip ``condition_changed``."""
    reason = recheck_reason(conn, ruleset, rule, action.shop_id, event, order_now, customer, now)
    if reason is not None:
        raise Skip("condition_changed", reason)


def history_as_of(conn, shop_id: int, event: Event, customer: dict, reads) -> dict:
    """The customer with history facts counted up to the event (``orders_count`` is 1 for
    a first order even when the mail goes out after a second one came in)."""
    ref = event.customer_ref
    if not ref:
        return customer
    rows = [
        row
        for row in reads.customer_orders(conn, shop_id, ref)
        if row.occurred_at <= event.occurred_at
    ]
    return with_history(customer, customer_history(rows, event.order_ref))


def digest_events(conn, digest: dict) -> list[dict]:
    """The events a digest collected, each as templates see an event (oldest first)."""
    found = []
    for member in digest.get("events") or ():
        stored = event_store.get_event(conn, member["event_id"])
        if stored is None:
            continue  # erased meanwhile: it is not listed
        found.append(Event.from_dict(stored.payload).context())
    return found
