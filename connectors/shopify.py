"""Shopify: HMAC-signed JSON webhooks, one topic per kind of change.

Facts this module relies on (see ../shared/platforms.md): the signature is
base64 HMAC-SHA256 of the raw body keyed with the app's client secret; a
delivery is identified by ``X-Shopify-Webhook-Id`` and an event across
subscriptions by ``X-Shopify-Event-Id``; delivery is at least once and
unordered; since API 2025-01 customer consent and tags are not in order
payloads; ``shipment_status`` gains values over time, so unknown ones are
recorded and produce no event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from aftersale.connectors.base import (
    Connector,
    DeliveryMeta,
    MissingHeaders,
    Normalized,
    OrderState,
    ShopAccess,
    SignatureError,
    believable,
    header,
    missing_id,
    verify_base64_hmac,
)
from aftersale.connectors.base import (
    compact as _compact,
)
from aftersale.connectors.base import (
    decimal_or_zero as _decimal,
)
from aftersale.connectors.base import (
    ref as _id,
)
from aftersale.connectors.base import (
    time_or_none as _time,
)
from aftersale.connectors.sanitize import shape
from aftersale.connectors.shopify_api import ShopifyAdminAPI, discount_input, gid
from aftersale.core.events import Event, iso, money, parse_time

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
REQUIRED_HEADERS = (
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Webhook-Id",
)

#: shipment_status (fulfillments) / status (fulfillment events) -> canonical kind
SHIPMENT_KINDS = {
    "carrier_picked_up": "shipment.in_transit",
    "in_transit": "shipment.in_transit",
    "out_for_delivery": "shipment.out_for_delivery",
    "attempted_delivery": "shipment.attempted",
    "delayed": "shipment.delayed",
    "ready_for_pickup": "shipment.ready_for_pickup",
    "picked_up": "shipment.delivered",
    "delivered": "shipment.delivered",
    "failure": "shipment.failed",
}
#: statuses Shopify documents that mean nothing to a customer yet
QUIET_SHIPMENT_STATUSES = frozenset({"label_printed", "label_purchased", "confirmed"})
DELIVERED_STATUSES = frozenset({"delivered", "picked_up"})

#: what each key this module reads must be; anything else is missing, with a warning
PAYLOAD_SHAPE = shape(
    objects="customer billing_address shipping_address default_address order line_item "
    "email_marketing_consent sms_marketing_consent",
    object_lists="line_items discount_codes transactions refund_line_items return_line_items",
    lists="tracking_numbers tracking_urls orders_to_redact orders_requested",
    money="total_price subtotal_price total_tax total_discounts price amount subtotal",
    times="created_at updated_at processed_at cancelled_at happened_at estimated_delivery_at "
    "consent_updated_at",
    emails="email contact_email email_address",
    locales="customer_locale locale",
    texts="name first_name last_name phone sku title variant_title vendor product_type "
    "currency note message tracking_company tracking_number tracking_url order_status_url "
    "cancel_reason financial_status fulfillment_status shipment_status handle code company "
    "address1 address2 city province zip country country_code kind status state reason "
    "return_reason return_reason_note customer_note",
    scalars="id order_id fulfillment_id customer_id line_item_id product_id variant_id "
    "order_number number quantity orders_count buyer_accepts_marketing",
)


class ShopifyConnector(Connector):
    name = "shopify"
    creates_shops = True
    PAYLOAD_SHAPE = PAYLOAD_SHAPE

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
            return _return_order_id(payload)
        return None

    # -- topic handlers -------------------------------------------------

    def _order_event(kind: str, time_field: str):
        def handler(self, payload, meta, state):
            order = canonical_order(payload)
            if not order["id"]:
                return missing_id("order")
            customer = canonical_customer(payload.get("customer"), payload)
            occurred = (
                _time(payload.get(time_field)) or _time(payload.get("updated_at")) or _now(meta)
            )
            event = self._event(kind, meta, order["id"], occurred, order=order, customer=customer)
            return Normalized(events=[event], state=_newer_state(state, order, payload))

        handler.__name__ = f"_{kind.replace('.', '_')}"
        return handler

    _order_created = _order_event("order.created", "created_at")
    _order_paid = _order_event("order.paid", "processed_at")
    _order_cancelled = _order_event("order.cancelled", "cancelled_at")
    _order_fulfilled = _order_event("order.fulfilled", "updated_at")
    _order_partially_fulfilled = _order_event("order.partially_fulfilled", "updated_at")

    def _order_updated(self, payload, meta, state):
        """No event of its own: it keeps the stored order fresh for later fulfillment events."""
        order = canonical_order(payload)
        if not order["id"]:
            return missing_id("order")
        new_state = _newer_state(state, order, payload)
        return Normalized(state=new_state, outcome="processed" if new_state else "stale")

    def _fulfillment_created(self, payload, meta, state):
        fulfillment = canonical_fulfillment(payload)
        if not fulfillment["id"]:
            return missing_id("fulfillment")
        occurred = believable(meta, _time(payload.get("created_at")) or _now(meta), "created_at")
        events = [
            self._event(
                "fulfillment.created",
                meta,
                fulfillment["id"],
                occurred,
                fulfillment=fulfillment,
                state=state,
                order_id=fulfillment["order_id"],
            )
        ]
        normalized = Normalized(
            events=events, state=_with_fulfillment(state, fulfillment, None, occurred)
        )
        shipment = self._shipment(
            payload.get("shipment_status"),
            fulfillment,
            occurred,
            meta,
            state,
            fulfillment["order_id"],
        )
        normalized.events += shipment.events
        if shipment.state is not None:
            normalized.state = _with_fulfillment(shipment.state, fulfillment, None, occurred)
        return normalized

    def _fulfillment_updated(self, payload, meta, state):
        fulfillment = canonical_fulfillment(payload)
        if not fulfillment["id"]:
            return missing_id("fulfillment")
        occurred = believable(meta, _time(payload.get("updated_at")) or _now(meta), "updated_at")
        return self._shipment(
            payload.get("shipment_status"),
            fulfillment,
            occurred,
            meta,
            state,
            fulfillment["order_id"],
        )

    def _fulfillment_event(self, payload, meta, state):
        fid = _id(payload.get("fulfillment_id"))
        if not fid:
            return missing_id("fulfillment")
        known = (state.extra.get("fulfillments") or {}).get(fid, {}).get("data") or {}
        fulfillment = {
            **known,
            "id": fid,
            "shipment_status": payload.get("status"),
            "message": payload.get("message"),
            "estimated_delivery_at": iso(_time(payload.get("estimated_delivery_at"))),
            "location": _compact(
                {k: payload.get(k) for k in ("city", "province", "country", "zip")}
            ),
        }
        occurred = believable(
            meta,
            _time(payload.get("happened_at")) or _time(payload.get("created_at")) or _now(meta),
            "happened_at",
        )
        return self._shipment(
            payload.get("status"), fulfillment, occurred, meta, state, _id(payload.get("order_id"))
        )

    def _refund_created(self, payload, meta, state):
        refund = canonical_refund(payload, state)
        if not refund["id"]:
            return missing_id("refund")
        occurred = (
            _time(payload.get("processed_at")) or _time(payload.get("created_at")) or _now(meta)
        )
        extra = dict(state.extra)
        extra["refunds"] = {**(extra.get("refunds") or {}), refund["id"]: refund["amount"]}
        new_state = OrderState(
            order=state.order or {"id": refund["order_id"]}, extra=extra, version=state.version
        )
        refund["full"] = _fully_refunded(new_state)
        event = self._event(
            "order.refunded",
            meta,
            refund["id"],
            occurred,
            refund=refund,
            state=state,
            order_id=refund["order_id"],
        )
        return Normalized(events=[event], state=new_state)

    def _return_event(kind: str):
        def handler(self, payload, meta, state):
            ret = {
                "id": _id(payload.get("id")),
                "status": payload.get("status"),
                "name": payload.get("name"),
                "line_items": [
                    _compact(
                        {
                            "id": _id(item.get("id")),
                            "quantity": item.get("quantity"),
                            "reason": item.get("return_reason") or item.get("reason"),
                            "note": item.get("return_reason_note") or item.get("customer_note"),
                        }
                    )
                    for item in payload.get("return_line_items") or []
                ],
            }
            if not ret["id"]:
                return missing_id("return")
            occurred = (
                _time(payload.get("updated_at")) or _time(payload.get("created_at")) or _now(meta)
            )
            order_id = _return_order_id(payload)
            event = self._event(
                kind, meta, ret["id"], occurred, return_=ret, state=state, order_id=order_id
            )
            return Normalized(events=[event])

        return handler

    def _customer_event(kind: str):
        def handler(self, payload, meta, state):
            customer = canonical_customer(payload, None)
            if customer is None:
                return missing_id("customer")
            occurred = (
                _time(payload.get("updated_at")) or _time(payload.get("created_at")) or _now(meta)
            )
            key = (
                customer["id"]
                if kind == "customer.created"
                else f"{customer['id']}@{iso(occurred)}"
            )
            return Normalized(events=[self._event(kind, meta, key, occurred, customer=customer)])

        return handler

    def _consent_updated(self, payload, meta, state):
        consent = payload.get("email_marketing_consent") or {}
        customer = _compact(
            {
                "id": _id(payload.get("customer_id")),
                "email": payload.get("email_address"),
                "accepts_email_marketing": _consent(consent),
            }
        )
        occurred = _time(consent.get("consent_updated_at")) or _now(meta)
        key = f"{customer.get('id')}@{iso(occurred)}"
        return Normalized(
            events=[self._event("customer.consent_updated", meta, key, occurred, customer=customer)]
        )

    def _privacy_event(kind: str):
        def handler(self, payload, meta, state):
            raw = payload.get("customer") or {}
            customer = _compact(
                {"id": _id(raw.get("id")), "email": raw.get("email"), "phone": raw.get("phone")}
            )
            orders = [
                str(o)
                for o in payload.get("orders_to_redact") or payload.get("orders_requested") or []
            ]
            key = meta.event_id or meta.delivery_id
            event = self._event(
                kind,
                meta,
                key,
                _now(meta),
                customer=customer or None,
                order={"ids": orders} if orders else None,
            )
            return Normalized(events=[event])

        return handler

    def _product_event(kind: str):
        def handler(self, payload, meta, state):
            product = _compact(
                {
                    "id": _id(payload.get("id")),
                    "title": payload.get("title"),
                    "handle": payload.get("handle"),
                    "product_type": payload.get("product_type"),
                    "vendor": payload.get("vendor"),
                    "tags": _tags(payload.get("tags")),
                    "status": payload.get("status"),
                }
            )
            occurred = _time(payload.get("updated_at")) or _now(meta)
            key = f"{product.get('id')}@{iso(occurred)}"
            return Normalized(events=[self._event(kind, meta, key, occurred, product=product)])

        return handler

    TOPIC_HANDLERS = {
        "orders/create": _order_created,
        "orders/paid": _order_paid,
        "orders/cancelled": _order_cancelled,
        "orders/fulfilled": _order_fulfilled,
        "orders/partially_fulfilled": _order_partially_fulfilled,
        "orders/updated": _order_updated,
        "fulfillments/create": _fulfillment_created,
        "fulfillments/update": _fulfillment_updated,
        "fulfillment_events/create": _fulfillment_event,
        "refunds/create": _refund_created,
        "returns/request": _return_event("return.requested"),
        "returns/approve": _return_event("return.approved"),
        "returns/decline": _return_event("return.declined"),
        "returns/cancel": _return_event("return.cancelled"),
        "returns/close": _return_event("return.closed"),
        "customers/create": _customer_event("customer.created"),
        "customers/update": _customer_event("customer.updated"),
        "customers/email_marketing_consent_update": _consent_updated,
        "customers/redact": _privacy_event("customer.redact"),
        "customers/data_request": _privacy_event("customer.data_request"),
        "shop/redact": _privacy_event("shop.redact"),
        "app/uninstalled": _privacy_event("app.uninstalled"),
        "products/create": _product_event("product.created"),
        "products/update": _product_event("product.updated"),
        "products/delete": _product_event("product.deleted"),
    }
    IGNORED_TOPICS = frozenset({"returns/reopen", "orders/edited", "orders/delete"})

    # -- helpers ---------------------------------------------------------

    def _shipment(self, status, fulfillment, occurred, meta, state, order_id=None) -> Normalized:
        """One shipment event per (fulfillment, status), in order, never backwards after delivery."""
        fid = fulfillment["id"]
        seen = (state.extra.get("fulfillments") or {}).get(fid) or {}
        if status is None or status in QUIET_SHIPMENT_STATUSES:
            return Normalized(
                state=_with_fulfillment(state, fulfillment, seen.get("status"), seen_at(seen))
            )
        kind = SHIPMENT_KINDS.get(status)
        if kind is None:
            return Normalized(outcome="unknown_status", detail=f"shipment_status={status}")
        last_at = seen_at(seen)
        if seen.get("status") in DELIVERED_STATUSES and status not in DELIVERED_STATUSES:
            return Normalized(outcome="stale", detail=f"{status} after {seen['status']}")
        if last_at and occurred < last_at:
            return Normalized(outcome="stale", detail=f"{status} older than {seen.get('status')}")
        fulfillment = {
            **(seen.get("data") or {}),
            **_compact(fulfillment),
            "shipment_status": status,
        }
        event = self._event(
            kind,
            meta,
            f"{fid}:{kind}",
            occurred,
            fulfillment=fulfillment,
            state=state,
            order_id=order_id,
        )
        new_state = _with_fulfillment(state, fulfillment, status, occurred)
        events = [event]
        if kind == "shipment.delivered" and _whole_order_delivered(new_state):
            # A split shipment: one order.delivered when the last parcel arrives.
            events.append(
                self._event(
                    "order.delivered",
                    meta,
                    order_id or fulfillment.get("order_id"),
                    occurred,
                    state=new_state,
                    order_id=order_id,
                )
            )
        return Normalized(events=events, state=new_state)

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

    # -- platform calls (GraphQL Admin API, connectors/shopify_api.py) -----------

    def tag_order(self, shop: ShopAccess, order_ref: str, tags: list[str]) -> dict:
        return ShopifyAdminAPI(shop).tags_add(gid("Order", order_ref), tags)

    def tag_customer(self, shop: ShopAccess, customer_ref: str, tags: list[str]) -> dict:
        return ShopifyAdminAPI(shop).tags_add(gid("Customer", customer_ref), tags)

    def add_order_note(self, shop: ShopAccess, order_ref: str, note: str) -> dict:
        return ShopifyAdminAPI(shop).append_order_note(gid("Order", order_ref), note)

    def create_discount_code(self, shop: ShopAccess, spec: dict) -> dict:
        return ShopifyAdminAPI(shop).create_discount_code(discount_input(spec))


# -- payload -> canonical dicts ---------------------------------------------


def canonical_order(p: dict) -> dict:
    customer = p.get("customer") or {}
    return {
        "id": _id(p.get("id")),
        "name": p.get("name"),
        "number": _id(p.get("order_number") or p.get("number")),
        "email": p.get("email") or p.get("contact_email") or customer.get("email") or None,
        "phone": p.get("phone") or None,
        "currency": p.get("currency"),
        "total_price": money(p.get("total_price")),
        "subtotal_price": money(p.get("subtotal_price")),
        "total_tax": money(p.get("total_tax")),
        "total_discounts": money(p.get("total_discounts")),
        "financial_status": p.get("financial_status"),
        "fulfillment_status": p.get("fulfillment_status"),
        "tags": _tags(p.get("tags")),
        "locale": p.get("customer_locale"),
        "accepts_marketing": p.get("buyer_accepts_marketing"),
        "created_at": iso(_time(p.get("created_at"))),
        "updated_at": iso(_time(p.get("updated_at"))),
        "cancelled_at": iso(_time(p.get("cancelled_at"))),
        "cancel_reason": p.get("cancel_reason"),
        "status_url": p.get("order_status_url"),
        "discount_codes": [d.get("code") for d in p.get("discount_codes") or [] if d.get("code")],
        "line_items": [canonical_line_item(item) for item in p.get("line_items") or []],
        "shipping_address": _address(p.get("shipping_address")),
        "billing_address": _address(p.get("billing_address")),
        "customer_id": _id(customer.get("id")),
    }


def canonical_line_item(item: dict) -> dict:
    return {
        "id": _id(item.get("id")),
        "product_id": _id(item.get("product_id")),
        "variant_id": _id(item.get("variant_id")),
        "sku": item.get("sku") or None,
        "title": item.get("title"),
        "variant_title": item.get("variant_title"),
        "product_type": item.get("product_type"),
        "vendor": item.get("vendor"),
        "quantity": item.get("quantity"),
        "price": money(item.get("price")),
    }


def canonical_customer(raw: dict | None, order: dict | None) -> dict | None:
    """The customer, with consent from the payload where an older API version still sends it."""
    raw = raw or {}
    order = order or {}
    cid = _id(raw.get("id"))
    email = raw.get("email") or order.get("email") or order.get("contact_email")
    if not cid and not email:
        return None
    address = (
        raw.get("default_address")
        or order.get("billing_address")
        or order.get("shipping_address")
        or {}
    )
    accepts_email = _consent(raw.get("email_marketing_consent"))
    if accepts_email is None and order.get("buyer_accepts_marketing") is not None:
        accepts_email = bool(order.get("buyer_accepts_marketing"))
    return _compact(
        {
            "id": cid or f"guest:{email.lower()}",
            "email": email or None,
            "phone": raw.get("phone") or order.get("phone") or None,
            "first_name": raw.get("first_name") or address.get("first_name"),
            "last_name": raw.get("last_name") or address.get("last_name"),
            "locale": order.get("customer_locale") or raw.get("locale"),
            "tags": _tags(raw.get("tags")) if raw.get("tags") is not None else None,
            "orders_count": raw.get("orders_count"),
            "accepts_email_marketing": accepts_email,
            "accepts_sms_marketing": _consent(raw.get("sms_marketing_consent")),
        }
    )


def canonical_fulfillment(p: dict) -> dict:
    numbers = p.get("tracking_numbers") or (
        [p["tracking_number"]] if p.get("tracking_number") else []
    )
    urls = p.get("tracking_urls") or ([p["tracking_url"]] if p.get("tracking_url") else [])
    return {
        "id": _id(p.get("id")),
        "order_id": _id(p.get("order_id")),
        "name": p.get("name"),
        "status": p.get("status"),
        "shipment_status": p.get("shipment_status"),
        "tracking_company": p.get("tracking_company"),
        "tracking_number": numbers[0] if numbers else None,
        "tracking_numbers": numbers,
        "tracking_url": urls[0] if urls else None,
        "tracking_urls": urls,
        "line_items": [
            {
                "product_id": _id(item.get("product_id")),
                "variant_id": _id(item.get("variant_id")),
                "sku": item.get("sku") or None,
                "title": item.get("title"),
                "quantity": item.get("quantity"),
            }
            for item in p.get("line_items") or []
        ],
        "email": p.get("email") or None,
        "created_at": iso(_time(p.get("created_at"))),
    }


def canonical_refund(p: dict, state: OrderState) -> dict:
    """A refund with its money amount: the successful refund transactions, summed."""
    currency = (state.order or {}).get("currency")
    total = 0
    for tx in p.get("transactions") or []:
        if tx.get("kind") == "refund" and tx.get("status") in ("success", None):
            total += _decimal(tx.get("amount"))
            currency = tx.get("currency") or currency
    return {
        "id": _id(p.get("id")),
        "order_id": _id(p.get("order_id")),
        "amount": money(total),
        "currency": currency,
        "note": p.get("note") or None,
        "line_items": [
            {
                "line_item_id": _id(item.get("line_item_id")),
                "title": (item.get("line_item") or {}).get("title"),
                "sku": (item.get("line_item") or {}).get("sku") or None,
                "quantity": item.get("quantity"),
                "subtotal": money(item.get("subtotal")),
            }
            for item in p.get("refund_line_items") or []
        ],
        "created_at": iso(_time(p.get("created_at"))),
    }


# -- small pieces -------------------------------------------------------------


def _newer_state(state: OrderState, order: dict, payload: dict) -> OrderState | None:
    """The state to store, or None when the payload is older than what is stored."""
    version = _time(payload.get("updated_at"))
    if state.version and version and version < state.version:
        return None
    return OrderState(order=order, extra=state.extra, version=version or state.version)


def _with_fulfillment(state: OrderState, fulfillment: dict, status, at) -> OrderState:
    extra = dict(state.extra)
    table = dict(extra.get("fulfillments") or {})
    previous = table.get(fulfillment["id"]) or {}
    table[fulfillment["id"]] = {
        "status": status or previous.get("status"),
        "at": iso(at) if at else previous.get("at"),
        "data": {**(previous.get("data") or {}), **_compact(fulfillment)},
    }
    extra["fulfillments"] = table
    order = state.order or {"id": fulfillment.get("order_id")}
    return OrderState(order=order, extra=extra, version=state.version)


def _whole_order_delivered(state: OrderState) -> bool:
    """Every fulfillment we know of is delivered, and the order is not partly unfulfilled."""
    table = state.extra.get("fulfillments") or {}
    if not table:
        return False
    if (state.order or {}).get("fulfillment_status") in ("partial", "unfulfilled"):
        return False
    return all(entry.get("status") in DELIVERED_STATUSES for entry in table.values())


def seen_at(seen: dict) -> datetime | None:
    return _time(seen.get("at"))


def _fully_refunded(state: OrderState) -> bool | None:
    total = (state.order or {}).get("total_price")
    if total is None:
        return None
    refunded = sum(_decimal(v) for v in (state.extra.get("refunds") or {}).values())
    return refunded >= _decimal(total)


def _return_order_id(payload: dict) -> str | None:
    """returns/request nests the order (``order.id``); returns/close has a top-level ``order_id``."""
    order = payload.get("order")
    return _id((order.get("id") if isinstance(order, dict) else None) or payload.get("order_id"))


def _consent(consent) -> bool | None:
    if not isinstance(consent, dict) or not consent.get("state"):
        return None
    return consent["state"] == "subscribed"


def _address(raw: dict | None) -> dict | None:
    if not raw:
        return None
    keys = (
        "first_name",
        "last_name",
        "company",
        "address1",
        "address2",
        "city",
        "province",
        "zip",
        "country",
        "country_code",
        "phone",
    )
    return _compact({k: raw.get(k) for k in keys})


def _tags(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value).split(",") if t.strip()]


def _now(meta: DeliveryMeta) -> datetime:
    return meta.happened_at
