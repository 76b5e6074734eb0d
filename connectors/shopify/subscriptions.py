"""What Shopify must send for each canonical event, and which access scopes that takes.

Pure tables, read by ``rules.scopes`` to work out an install's scopes and
webhook topics from the loaded rules: the topics are this connector's (the
ones ``topics.TOPIC_HANDLERS`` turns into events), the scopes are Shopify's
(a webhook topic needs the read scope of its resource; a platform step needs
the write scope of what it changes). Kept apart from the handlers so adding
a topic there and the subscription here is one reviewable pair.

Compliance topics (``customers/data_request``, ``customers/redact``,
``shop/redact``) are absent on purpose: Shopify does not let
``webhookSubscriptionCreate`` create them; they are declared in
``shopify.app.toml``.
"""

from __future__ import annotations

_SHIPMENT_TOPICS = ("fulfillments/create", "fulfillments/update", "fulfillment_events/create")

#: canonical event kind -> the webhook topics that produce it
KIND_TOPICS: dict[str, tuple[str, ...]] = {
    "order.created": ("orders/create",),
    "order.paid": ("orders/paid",),
    "order.fulfilled": ("orders/fulfilled",),
    "order.partially_fulfilled": ("orders/partially_fulfilled",),
    "order.cancelled": ("orders/cancelled",),
    "order.refunded": ("refunds/create",),
    "order.delivered": _SHIPMENT_TOPICS,
    "fulfillment.created": ("fulfillments/create",),
    "shipment.in_transit": _SHIPMENT_TOPICS,
    "shipment.out_for_delivery": _SHIPMENT_TOPICS,
    "shipment.ready_for_pickup": _SHIPMENT_TOPICS,
    "shipment.delayed": _SHIPMENT_TOPICS,
    "shipment.attempted": _SHIPMENT_TOPICS,
    "shipment.delivered": _SHIPMENT_TOPICS,
    "shipment.failed": _SHIPMENT_TOPICS,
    "return.requested": ("returns/request",),
    "return.approved": ("returns/approve",),
    "return.declined": ("returns/decline",),
    "return.cancelled": ("returns/cancel",),
    "return.closed": ("returns/close",),
    "customer.created": ("customers/create",),
    "customer.updated": ("customers/update",),
    "customer.consent_updated": ("customers_email_marketing_consent/update",),
    "product.created": ("products/create",),
    "product.updated": ("products/update",),
    "product.deleted": ("products/delete",),
    "app.uninstalled": ("app/uninstalled",),
}

#: subscribed whatever the rules say: ``orders/updated`` keeps the stored order fresh for
#: the fulfillment, refund and return events that carry it; ``app/uninstalled`` tells
#: Aftersale to stop acting for a shop
ALWAYS_TOPICS: tuple[str, ...] = ("orders/updated", "app/uninstalled")

#: subscribed when the rules use the product catalog (repurchase waits, recommendations,
#: catalog facts: rules/catalog_facts.py ``uses_catalog``); ``catalog sync`` needs the same
#: ``read_products`` scope
CATALOG_TOPICS: tuple[str, ...] = ("products/create", "products/update", "products/delete")

#: the access scope every install asks for (orders are what Aftersale is about)
BASE_SCOPES: tuple[str, ...] = ("read_orders",)

#: a webhook topic's resource (before the ``/``) -> the scope Shopify wants for it
TOPIC_SCOPES: dict[str, str] = {
    "orders": "read_orders",
    "refunds": "read_orders",
    "fulfillments": "read_fulfillments",
    "fulfillment_events": "read_fulfillments",
    "returns": "read_returns",
    "customers": "read_customers",
    "customers_email_marketing_consent": "read_customers",
    "customers_marketing_consent": "read_customers",
    "products": "read_products",
}

#: a rule step that calls the Admin API -> the scope it needs
STEP_SCOPES: dict[str, str] = {
    "tag_order": "write_orders",
    "note_order": "write_orders",
    "tag_customer": "write_customers",
    "discount_code": "write_discounts",
}

#: marketing consent per channel: a marketing message needs the customer's consent,
#: which since API 2025-01 only the consent topics carry
MARKETING_CONSENT_TOPICS: dict[str, tuple[str, ...]] = {
    "email": ("customers_email_marketing_consent/update",),
    "sms": ("customers_marketing_consent/update",),
}


def topic_scope(topic: str) -> str | None:
    """The read scope a webhook topic needs; None for topics that need none (app/*)."""
    return TOPIC_SCOPES.get(topic.split("/", 1)[0])


def graphql_topic(topic: str) -> str:
    """The ``WebhookSubscriptionTopic`` enum value: ``orders/create`` -> ``ORDERS_CREATE``."""
    return topic.replace("/", "_").upper()
