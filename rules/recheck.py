"""The send-time re-check, one function for the worker and for ``rules test``.

A delayed action re-evaluates its rule's ``if`` just before sending, against the
order as it is now (its latest stored state), the customer as stored now (tags,
history facts) and the present time, so "unless tagged no-review" or "first order
only" still hold a week later. Both the worker (``workers/promises.py``) and
``aftersale rules test`` call :func:`recheck_reason`, so they decide alike.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from aftersale.core.events import Event
from aftersale.rules.pipeline import with_customer_history
from aftersale.store import state as state_store


def waited(action) -> bool:
    """Whether an action was planned to wait (a delay, ``wait_for``, quiet hours, a send
    window, a digest): only those are re-checked; an immediate one was judged just now."""
    return bool(action.wait_for) or action.due_at > action.created_at


def recheck_reason(
    conn, ruleset, rule, shop_id: int, event: Event, order_now, customer: dict, now: datetime
) -> str | None:
    """None when the rule's ``if`` still holds now, else the failing check and its value."""
    current = dict(customer or event.customer or {})
    ref = event.customer_ref
    row = state_store.get_customer(conn, shop_id, ref) if ref else None
    if row is not None and row.tags is not None:
        current["tags"] = row.tags
    judged = replace(event, order=order_now or event.order, customer=current)
    judged = with_customer_history(conn, ruleset, shop_id, judged)
    ctx = judged.context()
    ctx["_now"] = now
    return rule.condition.explain(ctx)
