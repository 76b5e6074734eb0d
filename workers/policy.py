"""May this message go out now? Consent, suppressions and the like, checked just before sending.

Transactional messages (order and shipping information) go to anyone who
ordered, unless the address bounced or complained. Marketing messages also
need the customer's consent for the channel and an address that did not
unsubscribe.
"""

from __future__ import annotations

from aftersale.core.errors import Defer
from aftersale.core.steps import MESSAGE_STEPS, has_consent
from aftersale.store import action_queries
from aftersale.store import messages as message_store


class Skip(Exception):
    """The action must not run; ``reason`` is recorded as its skip reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_recipient(conn, action, channel: str, address: str, customer: dict, *, keys=()) -> None:
    """Raise Skip when ``address`` must not get this action's message on ``channel``.

    ``keys`` (the SECRET_KEYs) find suppressions stored as keyed hashes.
    """
    reason = message_store.suppression(
        conn, action.shop_id, channel, address, action.category, keys=keys
    )
    if reason:
        raise Skip("suppressed", f"{channel} address suppressed ({reason})")
    if action.category == "marketing" and not has_consent(customer, channel):
        raise Skip(
            "no_consent", f"marketing {channel} needs the customer's {channel} marketing consent"
        )


def check_frequency_cap(conn, settings, rule, action, now) -> None:
    """At most ``max`` marketing messages per customer within ``per`` (settings.yaml).

    Over the cap the action is skipped (``capped``), or deferred to when the
    oldest counted message leaves the window if its rule says ``on_cap: defer``.
    Transactional messages never count and are never capped.
    """
    if settings.frequency_cap is None or action.category != "marketing":
        return
    if action.action_type not in MESSAGE_STEPS or not action.customer_ref:
        return
    limit, per = settings.frequency_cap
    sent = action_queries.marketing_sent_since(
        conn, action.shop_id, action.customer_ref, now - per, action.id
    )
    if len(sent) < limit:
        return
    detail = f"{len(sent)} marketing message(s) to this customer within {per}"
    if rule is not None and rule.on_cap == "defer":
        raise Defer(min(sent) + per, f"frequency cap: {detail}")
    raise Skip("capped", detail)
