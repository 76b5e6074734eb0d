"""Shopify's marketing consent webhooks: one customer's email or SMS consent changed.

Since API 2025-01 customer and order payloads carry no consent objects, so
these two topics are how Shopify tells us (platforms.md). The
``X-Shopify-Topic`` values are ``customers_email_marketing_consent/update``
(body: ``customer_id``, ``email_address``, ``email_marketing_consent``) and
``customers_marketing_consent/update`` (SMS; body: ``id``, ``phone``,
``sms_marketing_consent``, per Shopify's example payload; ``customer_id`` is
read too). ``customers/email_marketing_consent_update``, as Shopify's 2025-01
changelog spells it, is kept: harmless, and earlier deliveries were stored so.

The event's customer carries the consent record (state, opt-in level, when
it changed) next to the ``accepts_*`` flag, so the store can keep the newest
record per channel and ignore an older one that arrives late.
"""

from __future__ import annotations

from aftersale.connectors.base import Normalized, believable, missing_id
from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import ref as _id
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.shopify.canonical import consent_state
from aftersale.core.events import iso

EMAIL = ("email", "email_marketing_consent", "email_address", "email")
SMS = ("sms", "sms_marketing_consent", "phone", "phone")
#: topic -> (channel, consent object key, address key in the body, canonical address key)
CONSENT_TOPICS = {
    "customers_email_marketing_consent/update": EMAIL,
    "customers/email_marketing_consent_update": EMAIL,
    "customers_marketing_consent/update": SMS,
}


def consent_updated(connector, payload, meta, state):
    channel, key, address_key, address = CONSENT_TOPICS[meta.topic]
    consent = payload.get(key) or {}
    customer_id = _id(payload.get("customer_id")) or _id(payload.get("id"))
    if not customer_id:
        return missing_id("customer")
    given = _time(consent.get("consent_updated_at"))
    occurred = believable(meta, given, "consent_updated_at") if given else meta.happened_at
    record = _compact(
        {
            "state": consent.get("state"),
            "opt_in_level": consent.get("opt_in_level"),
            "consent_updated_at": iso(occurred),
        }
    )
    customer = _compact(
        {
            "id": customer_id,
            address: payload.get(address_key),
            f"accepts_{channel}_marketing": consent_state(consent),
            key: record if record.get("state") else None,
        }
    )
    event_key = (
        f"{customer_id}@{iso(occurred)}"
        if channel == "email"
        else (f"{customer_id}:{channel}@{iso(occurred)}")
    )
    return Normalized(
        events=[
            connector._event(
                "customer.consent_updated", meta, event_key, occurred, customer=customer
            )
        ]
    )


HANDLERS = {topic: consent_updated for topic in CONSENT_TOPICS}
