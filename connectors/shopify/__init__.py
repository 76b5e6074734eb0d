"""Shopify: HMAC-signed JSON webhooks, one topic per kind of change, and the Admin API calls.

Facts this package relies on (see ../shared/platforms.md): the signature is
base64 HMAC-SHA256 of the raw body keyed with the app's client secret; a
delivery is identified by ``X-Shopify-Webhook-Id`` and an event across
subscriptions by ``X-Shopify-Event-Id``; delivery is at least once and
unordered; since API 2025-01 customer consent and tags are not in order
payloads; ``shipment_status`` gains values over time, so unknown ones are
recorded and produce no event.

The modules split along what changes for different reasons:

- ``connector``: what the receiver and the workers call (headers, signature,
  dedupe keys, platform calls);
- ``topics``: one handler per webhook topic, and the shipment bookkeeping that
  keeps split, late and out-of-order fulfillments straight;
- ``canonical``: payload -> the canonical dicts rules and templates see (also
  the shape WooCommerce's orders are made to match);
- ``api``: the GraphQL Admin API client, handed its HTTP session by the caller.
"""

from __future__ import annotations

from aftersale.connectors.shopify.canonical import (
    canonical_customer,
    canonical_fulfillment,
    canonical_line_item,
    canonical_order,
    canonical_refund,
)
from aftersale.connectors.shopify.connector import ShopifyConnector

__all__ = [
    "ShopifyConnector",
    "canonical_customer",
    "canonical_fulfillment",
    "canonical_line_item",
    "canonical_order",
    "canonical_refund",
]
