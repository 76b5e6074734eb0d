"""WooCommerce: per-webhook secrets, pings, and coalesced ``order.updated`` turned into events.

Facts this package relies on (see ../shared/platforms.md and
tests/fixtures/woocommerce/SOURCES.md): the signature is base64 HMAC-SHA256
of the exact body with the webhook's own secret; the ping is a form-encoded
``webhook_id=N`` without any ``X-WC-*`` header and needs exactly 200;
``X-WC-Webhook-Delivery-ID`` is a hash of the webhook id and the current
second, so it is not a dedupe key; there is no retry, and the 7th failure in
a row disables the webhook; the payload is built when the delivery is sent,
so several changes can arrive as one, and the only order topic that matters
is ``order.updated``. Everything a rule cares about is therefore derived by
comparing the new order with the last stored one.

The modules split along what changes for different reasons:

- ``connector``: what the receiver and the workers call (ping, headers,
  signature, dedupe keys, platform calls), and ``shop_domain``;
- ``topics``: one handler per webhook topic, and the diff against the stored
  order that turns a coalesced update into events;
- ``canonical``: payload -> the canonical dicts, in the Shopify connector's
  shape so one rule file serves both;
- ``api``: the REST API client, handed its HTTP session by the caller.
"""

from __future__ import annotations

from aftersale.connectors.woocommerce.canonical import (
    canonical_customer,
    canonical_customer_record,
    canonical_fulfillment,
    canonical_line_item,
    canonical_order,
)
from aftersale.connectors.woocommerce.connector import WooCommerceConnector, shop_domain

__all__ = [
    "WooCommerceConnector",
    "canonical_customer",
    "canonical_customer_record",
    "canonical_fulfillment",
    "canonical_line_item",
    "canonical_order",
    "shop_domain",
]
