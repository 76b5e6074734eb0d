"""The Shopify connector: what the receiver and the workers call.

Receiving (headers -> DeliveryMeta, the app-wide HMAC secret, dedupe keys,
which order a payload is about) and the platform calls (tags, notes,
discount codes through the GraphQL Admin API). What each topic means lives
in ``topics``, the canonical shapes in ``canonical``: this class only wires
them to the :class:`~aftersale.connectors.base.Connector` interface.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aftersale.connectors.base import (
    Connector,
    DeliveryMeta,
    MissingHeaders,
    ShopAccess,
    SignatureError,
    header,
    verify_base64_hmac,
)
from aftersale.connectors.base import ref as _id
from aftersale.connectors.shopify import orders as shopify_orders
from aftersale.connectors.shopify import products as shopify_products
from aftersale.connectors.shopify import topics
from aftersale.connectors.shopify.api import ShopifyAdminAPI, discount_input, gid
from aftersale.connectors.shopify.canonical import PAYLOAD_SHAPE, return_order_id
from aftersale.core.events import Event, parse_time

if TYPE_CHECKING:
    import requests

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
REQUIRED_HEADERS = (
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Webhook-Id",
)


#: answered 200 for any verified shop: Shopify's mandatory privacy topics (shop/redact comes
#: 48 hours after the uninstall) and the uninstall notice itself must never fail
ANY_SHOP_TOPICS = frozenset(
    {"customers/data_request", "customers/redact", "shop/redact", "app/uninstalled"}
)
#: a body that may legitimately arrive twice with the same bytes (a shop reinstalled and
#: uninstalled again is redacted again): deduplicated on the webhook id only
REPEATABLE_TOPICS = frozenset({"shop/redact"})


class ShopifyConnector(Connector):
    """Shopify's webhooks and Admin API calls.

    Shopify signs only the body, with the app's one secret for every shop:
    the signature proves Shopify sent those bytes, not which shop they are
    about. So a delivery is accepted only for a shop that installed the app
    (``requires_install``), a body is stored once per shop and topic whatever
    its headers (``body_key``), and a body must have its topic's shape
    (``topics.REQUIRED_KEYS``; the privacy topics must name the shop).
    """

    name = "shopify"
    orders = shopify_orders
    products = shopify_products
    creates_shops = False
    requires_install = True
    ANY_SHOP_TOPICS = ANY_SHOP_TOPICS
    REQUIRED_KEYS = topics.REQUIRED_KEYS
    PAYLOAD_SHAPE = PAYLOAD_SHAPE
    NEVER_FILLED = {
        "order.line_items.product_type": "order line items carry no product type "
        "(it is on the product: filled from the catalog once `aftersale catalog sync` ran)",
    }
    TOPIC_HANDLERS = topics.TOPIC_HANDLERS
    IGNORED_TOPICS = topics.IGNORED_TOPICS

    # -- receiving -----------------------------------------------------------------

    def read_meta(self, headers: Mapping[str, str], url_shop: str | None = None) -> DeliveryMeta:
        if not header(headers, "X-Shopify-Hmac-Sha256"):
            raise SignatureError("missing X-Shopify-Hmac-Sha256")
        missing = [name for name in REQUIRED_HEADERS if not header(headers, name)]
        if missing:
            raise MissingHeaders("missing headers: " + ", ".join(missing))
        shop = header(headers, "X-Shopify-Shop-Domain").lower()
        if not SHOP_DOMAIN.match(shop):
            raise MissingHeaders("X-Shopify-Shop-Domain is not a myshopify.com domain")
        try:
            triggered_at = parse_time(header(headers, "X-Shopify-Triggered-At"))
        except ValueError:
            triggered_at = None
        return DeliveryMeta(
            platform=self.name,
            shop=shop,
            topic=header(headers, "X-Shopify-Topic"),
            delivery_id=header(headers, "X-Shopify-Webhook-Id"),
            event_id=header(headers, "X-Shopify-Event-Id"),
            api_version=header(headers, "X-Shopify-API-Version"),
            triggered_at=triggered_at,
            headers=headers,
        )

    def signing_secrets(self, meta: DeliveryMeta, config, credentials) -> Sequence[str]:
        """Shopify signs with the app's client secret (and the previous one during a rotation);
        a store connected with ``shops add-shopify`` uses its own app, whose secret is stored
        with the shop."""
        own = (credentials or {}).get("client_secret")
        return (*config.shopify_api_secrets, own) if own else config.shopify_api_secrets

    def verify(self, meta: DeliveryMeta, raw_body: bytes, secrets: Sequence[str]) -> None:
        verify_base64_hmac(header(meta.headers, "X-Shopify-Hmac-Sha256"), raw_body, secrets)

    def delivery_key(self, meta: DeliveryMeta, payload: dict) -> str:
        return f"webhook:{meta.delivery_id}"

    def body_key(self, meta: DeliveryMeta, body: bytes) -> str | None:
        if meta.topic in REPEATABLE_TOPICS:
            return None
        return hashlib.sha256(body).hexdigest()

    def misfit(self, meta: DeliveryMeta, payload) -> str | None:
        problem = super().misfit(meta, payload)
        if problem is not None:
            return problem
        foreign = [k for k in topics.FOREIGN_KEYS.get(meta.topic, ()) if k in payload]
        if foreign:
            return f"{meta.topic}: has {', '.join(foreign)} (a body of another topic)"
        shop_key = topics.SHOP_KEYS.get(meta.topic)
        named = payload.get(shop_key) if shop_key else None
        if shop_key and (not isinstance(named, str) or named.strip().lower() != meta.shop):
            return f"{meta.topic}: the body is about another shop than the headers say"
        return None

    def order_ref(self, topic: str, payload: dict) -> str | None:
        if not isinstance(payload, dict):
            return None
        if topic.startswith("orders/"):
            return _id(payload.get("id"))
        if topic.startswith(("fulfillments/", "fulfillment_events/", "refunds/")):
            return _id(payload.get("order_id"))
        if topic.startswith("returns/"):
            return return_order_id(payload)
        return None

    # -- the events the topic handlers make -----------------------------------------

    def _event(self, kind, meta, key, occurred, *, state=None, order_id=None, **subjects) -> Event:
        """An event; events about an order carry the stored order, or at least its id.

        When the order is not known yet (its webhook is late or was missed), a
        fulfillment's own ``email`` still lets the customer be told it shipped.
        """
        if "order" not in subjects:
            if state is not None and state.order:
                subjects["order"] = state.order
            elif order_id:
                subjects["order"] = {"id": order_id}
                email = (subjects.get("fulfillment") or {}).get("email")
                if email and "customer" not in subjects:
                    subjects["customer"] = {"id": f"guest:{email.lower()}", "email": email}
        return super()._event(kind, meta, key, occurred, **subjects)

    # -- platform calls (GraphQL Admin API, api.py) ---------------------------------
    # ``session`` is the caller's pooled HTTP session: the connector keeps none.

    def tag_order(
        self, shop: ShopAccess, order_ref: str, tags: list[str], *, session: requests.Session
    ) -> dict:
        return ShopifyAdminAPI(shop, session).tags_add(gid("Order", order_ref), tags)

    def tag_customer(
        self, shop: ShopAccess, customer_ref: str, tags: list[str], *, session: requests.Session
    ) -> dict:
        return ShopifyAdminAPI(shop, session).tags_add(gid("Customer", customer_ref), tags)

    def add_order_note(
        self, shop: ShopAccess, order_ref: str, note: str, *, session: requests.Session
    ) -> dict:
        return ShopifyAdminAPI(shop, session).append_order_note(gid("Order", order_ref), note)

    def create_discount_code(
        self, shop: ShopAccess, spec: dict, *, session: requests.Session
    ) -> dict:
        return ShopifyAdminAPI(shop, session).create_discount_code(discount_input(spec))
