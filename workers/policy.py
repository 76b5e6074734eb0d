"""May this message go out now? Consent, suppressions and the like, checked just before sending.

Transactional messages (order and shipping information) go to anyone who
ordered, unless the address bounced or complained. Marketing messages also
need the customer's consent for the channel, an address that did not
unsubscribe, and a sub-category the customer did not mute.
"""

from __future__ import annotations

from aftersale.core.errors import Defer
from aftersale.core.preferences import subcategory_of
from aftersale.core.steps import MESSAGE_STEPS
from aftersale.rules.consent import marketing_allowed, no_consent_detail
from aftersale.store import action_queries
from aftersale.store import messages as message_store
from aftersale.store import preferences as preference_store


class Skip(Exception):
    """The action must not run; ``reason`` is recorded as its skip reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def check_recipient(
    conn,
    action,
    channel: str,
    address: str,
    customer: dict,
    *,
    keys=(),
    basis="explicit",
    reads=None,
) -> None:
    """Raise Skip when ``address`` must not get this action's message on ``channel``.

    ``keys`` (the SECRET_KEYs) find suppressions stored as keyed hashes;
    ``basis`` is the shop's legal basis for marketing (settings.yaml ``consent``).
    A transactional message needs no marketing consent, on any channel. ``reads``
    (workers/job_reads.py) may hold the job's suppressions, read once for all its mails.
    """
    lookup = reads.suppression if reads is not None else message_store.suppression
    reason = lookup(conn, action.shop_id, channel, address, action.category, keys=keys)
    if reason:
        raise Skip("suppressed", f"{channel} address suppressed ({reason})")
    if action.category == "marketing" and not marketing_allowed(
        conn, action.shop_id, customer, channel, basis, action.order_ref
    ):
        raise Skip("no_consent", no_consent_detail(channel, basis))


def check_preferences(conn, rule, action) -> None:
    """Skip (``preference``) a marketing message of a sub-category the customer muted.

    Checked when the action runs, not when it was planned, so a choice made on
    the preference page applies to what is already pending. An action planned
    before sub-categories were stored takes its rule's; a rule since removed,
    the default sub-category.
    """
    if action.category != "marketing" or action.action_type not in MESSAGE_STEPS:
        return
    planned = action.subcategory or (rule.subcategory if rule is not None else None)
    subcategory = subcategory_of(action.category, planned)
    if subcategory in preference_store.muted(conn, action.shop_id, action.customer_ref):
        raise Skip("preference", f"the customer muted marketing/{subcategory}")


def check_frequency_cap(conn, settings, rule, action, now, release=None) -> None:
    """At most ``max`` marketing messages per customer within ``per`` (settings.yaml).

    Over the cap the action is skipped (``capped``), or deferred to when the
    oldest counted message leaves the window if its rule says ``on_cap: defer``, moved
    out of quiet hours and into the send window by ``release`` (workers/promises.py).
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
        until = min(sent) + per
        if release is not None:  # not into quiet hours or outside the send window
            until = release(settings, until, action.action_type)
        raise Defer(until, f"frequency cap: {detail}")
    raise Skip("capped", detail)
