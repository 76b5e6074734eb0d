"""The Shopify connector: what the receiver and the workers call.

Receiving (headers -> DeliveryMeta, the app-wide HMAC secret, dedupe keys,
which order a payload is about) and the platform calls (tags, notes,
discount codes through the GraphQL Admin API). What each topic means lives
in ``topics``, the canonical shapes in ``canonical``: this class only wires
them to the :class:`~aftersale.connectors.base.Connector` interface.
"""

from __future__ import annotations

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


class ShopifyConnector(Connector):
    name = "shopify"
    creates_shops = True
    PAYLOAD_SHAPE = PAYLOAD_SHAPE
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
        """Shopify signs with the app's client secret (and the previous one during a rotation)."""
        return config.shopify_api_secrets

    def verify(self, meta: DeliveryMeta, raw_body: bytes, secrets: Sequence[str]) -> None:
        verify_base64_hmac(header(meta.headers, "X-Shopify-Hmac-Sha256"), raw_body, secrets)

    def delivery_key(self, meta: DeliveryMeta, payload: dict) -> str:
        return f"webhook:{meta.delivery_id}"

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
        return Event(
            kind=kind,
            shop=meta.shop,
            key=str(key),
            occurred_at=occurred,
            source={"platform": self.name, "topic": meta.topic, "delivery_id": meta.delivery_id},
            **subjects,
        )

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
