"""The WooCommerce connector: what the receiver and the workers call.

Receiving (the unsigned ping, headers -> DeliveryMeta, the per-webhook
secrets, dedupe keys, which order a payload is about) and the platform calls
(order notes, coupons through the REST API). What each topic means lives in
``topics``, the canonical shapes in ``canonical``: this class only wires them
to the :class:`~aftersale.connectors.base.Connector` interface.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from aftersale.connectors.base import (
    Connector,
    DeliveryMeta,
    MissingHeaders,
    Normalized,
    OrderState,
    ShopAccess,
    SignatureError,
    UnknownShop,
    header,
    verify_base64_hmac,
)
from aftersale.connectors.base import ref as _id
from aftersale.connectors.woocommerce import customer_meta, topics
from aftersale.connectors.woocommerce import orders as woocommerce_orders
from aftersale.connectors.woocommerce import products as woocommerce_products
from aftersale.connectors.woocommerce.api import WooCommerceAPI
from aftersale.connectors.woocommerce.canonical import PAYLOAD_SHAPE

if TYPE_CHECKING:
    import requests

REQUIRED_HEADERS = (
    "X-WC-Webhook-Topic",
    "X-WC-Webhook-Resource",
    "X-WC-Webhook-ID",
)
PING = re.compile(rb"^webhook_id=\d{1,20}$")


class WooCommerceConnector(Connector):
    name = "woocommerce"
    orders = woocommerce_orders
    products = woocommerce_products
    creates_shops = False  # each webhook has its own secret: the shop must be connected first
    PAYLOAD_SHAPE = PAYLOAD_SHAPE
    NEVER_FILLED = {
        "order.line_items.product_type": "order line items carry no product type or "
        "category (filled from the catalog once `aftersale catalog sync` ran)",
        "order.line_items.vendor": "WooCommerce has no vendor field",
        "order.tags": "WooCommerce orders have no tags",
        "customer.tags": "WooCommerce customers have no tags",
        "order.cancel_reason": "WooCommerce records no cancel reason",
        "order.status_url": "the REST order has no status page link",
    }
    TOPIC_HANDLERS = topics.TOPIC_HANDLERS
    IGNORED_TOPICS = topics.IGNORED_TOPICS

    # -- receiving -----------------------------------------------------------------

    def is_ping(self, headers: Mapping[str, str], body: bytes) -> bool:
        """WooCommerce's unsigned ping: ``webhook_id=N``, form-encoded, no X-WC-* header."""
        if header(headers, "X-WC-Webhook-Signature") or header(headers, "X-WC-Webhook-Topic"):
            return False
        return bool(PING.match(body.strip()))

    def read_meta(self, headers: Mapping[str, str], url_shop: str | None = None) -> DeliveryMeta:
        if not header(headers, "X-WC-Webhook-Signature"):
            raise SignatureError("missing X-WC-Webhook-Signature")
        missing = [name for name in REQUIRED_HEADERS if not header(headers, name)]
        if missing:
            raise MissingHeaders("missing headers: " + ", ".join(missing))
        source = header(headers, "X-WC-Webhook-Source")
        shop = shop_domain(url_shop) if url_shop else shop_domain(source or "")
        if not shop:
            raise MissingHeaders("no shop: X-WC-Webhook-Source is missing and the URL names none")
        return DeliveryMeta(
            platform=self.name,
            shop=shop,
            topic=header(headers, "X-WC-Webhook-Topic"),
            delivery_id=header(headers, "X-WC-Webhook-Delivery-ID"),
            headers=headers,
        )

    def signing_secrets(self, meta: DeliveryMeta, config, credentials) -> Sequence[str]:
        """The shop's webhook secrets (the current one, and the previous during a rotation)."""
        if credentials is None:
            raise UnknownShop(
                f"shop {meta.shop!r} is not connected (aftersale shops add-woocommerce)"
            )
        return tuple(
            s
            for s in (
                credentials.get("webhook_secret"),
                credentials.get("webhook_secret_previous"),
            )
            if s
        )

    def verify(self, meta: DeliveryMeta, raw_body: bytes, secrets: Sequence[str]) -> None:
        verify_base64_hmac(header(meta.headers, "X-WC-Webhook-Signature"), raw_body, secrets)

    def delivery_key(self, meta: DeliveryMeta, payload: dict) -> str:
        """Webhook, resource, its modification time and the body's hash; never the delivery id.

        The delivery id repeats for two different resources sent by one webhook
        in the same second. A true repeat (same body) gets the same key; any
        change gets a new one, and the state diff then decides what it means.
        """
        webhook = header(meta.headers, "X-WC-Webhook-ID") or "-"
        resource = header(meta.headers, "X-WC-Webhook-Resource") or "-"
        digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
        modified = payload.get("date_modified_gmt") or "-"
        return f"wc:{webhook}:{resource}:{payload.get('id')}:{modified}:{digest[:24]}"

    def order_ref(self, topic: str, payload: dict) -> str | None:
        if not isinstance(payload, dict):
            return None
        if topic.startswith("order."):
            return _id(payload.get("id"))
        return None

    # -- normalizing ---------------------------------------------------------------

    def normalize(self, meta: DeliveryMeta, payload: dict, state: OrderState) -> Normalized:
        """Like the base class, plus every ``coupon.*`` and ``action.*`` topic recorded as ignored,
        reading plugin meta with the shop's keys (``meta.options``, from settings.yaml)."""
        if meta.topic.startswith(("coupon.", "action.")):
            return Normalized(outcome="ignored_topic")
        with customer_meta.keys_in_use(meta.options.get(customer_meta.OPTION)):
            return super().normalize(meta, payload, state)

    # -- platform calls (REST API, api.py) ------------------------------------------
    # ``session`` is the caller's pooled HTTP session: the connector keeps none.

    def add_order_note(
        self, shop: ShopAccess, order_ref: str, note: str, *, session: requests.Session
    ) -> dict:
        return WooCommerceAPI(shop, session).add_order_note(order_ref, note)

    def create_discount_code(
        self, shop: ShopAccess, spec: dict, *, session: requests.Session
    ) -> dict:
        return WooCommerceAPI(shop, session).create_coupon(spec)


def shop_domain(url: str) -> str | None:
    """``https://Shop.Example.com/`` -> ``shop.example.com``; a sub-folder install keeps its
    path (``example.com/shop``), since that is the store's address."""
    if not url:
        return None
    text = url.strip()
    parts = urlsplit(text if "//" in text else f"https://{text}")
    host = (parts.hostname or "").lower()
    if not host:
        return None
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path.strip("/")
    return f"{host}/{path}" if path else host
