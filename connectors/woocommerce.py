"""WooCommerce: per-webhook secrets, pings, and coalesced ``order.updated`` turned into events.

Facts this module relies on (see ../shared/platforms.md and
tests/fixtures/woocommerce/SOURCES.md): the signature is base64 HMAC-SHA256
of the exact body with the webhook's own secret; the ping is a form-encoded
``webhook_id=N`` without any ``X-WC-*`` header and needs exactly 200;
``X-WC-Webhook-Delivery-ID`` is a hash of the webhook id and the current
second, so it is not a dedupe key; there is no retry, and the 7th failure in
a row disables the webhook; the payload is built when the delivery is sent,
so several changes can arrive as one, and the only order topic that matters
is ``order.updated``. Everything a rule cares about is therefore derived by
comparing the new order with the last stored one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote, urlsplit

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
from aftersale.core.events import Event, iso, money

REQUIRED_HEADERS = (
    "X-WC-Webhook-Topic",
    "X-WC-Webhook-Resource",
    "X-WC-Webhook-ID",
)
PING = re.compile(rb"^webhook_id=\d{1,20}$")
TRACKING_META = "_wc_shipment_tracking_items"
PAID_STATUSES = frozenset({"processing", "completed", "on-hold"})
#: An order first seen through order.updated (its order.created delivery was coalesced or
#: missed) still gets its order.created event if it is this recent; older orders are ones
#: that existed before the store was connected, and a thank-you for them would be odd.
FIRST_SIGHT_CREATED_WITHIN = timedelta(days=2)

#: what each key this module reads must be; anything else is missing, with a warning
PAYLOAD_SHAPE = shape(
    objects="billing shipping",
    object_lists="line_items refunds coupon_lines meta_data categories tags",
    money="total total_tax discount_total price subtotal",
    times="date_created_gmt date_modified_gmt date_paid_gmt date_completed_gmt",
    emails="email",
    texts="status number currency first_name last_name phone company address_1 address_2 "
    "city state postcode country name parent_name sku payment_method payment_method_title "
    "code reason slug tracking_number tracking_provider custom_tracking_provider "
    "custom_tracking_link tracking_id",
    scalars="id customer_id product_id variation_id quantity date_shipped",
)

#: Shipment Tracking's predefined carriers store only a slug; the link is the carrier's
#: tracking page. Slugs not listed here give no link (the extension's REST endpoint
#: ``/wc-shipment-tracking/v3/orders/{id}/shipment-trackings`` has it for any carrier).
CARRIERS: dict[str, tuple[str, str]] = {
    "ups": ("UPS", "https://www.ups.com/track?loc=en_US&tracknum={number}"),
    "fedex": ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={number}"),
    "usps": ("USPS", "https://tools.usps.com/go/TrackConfirmAction_input?qtc_tLabels1={number}"),
    "dhl": ("DHL", "https://www.dhl.com/global-en/home/tracking.html?tracking-id={number}"),
    "dhl-us": ("DHL US", "https://www.dhl.com/us-en/home/tracking.html?tracking-id={number}"),
    "dhl-de": (
        "DHL",
        "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={number}",
    ),
    "deutsche-post-dhl": (
        "DHL",
        "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={number}",
    ),
    "post-at": ("Österreichische Post", "https://www.post.at/sv/sendungsdetails?snr={number}"),
    "austrian-post": (
        "Österreichische Post",
        "https://www.post.at/sv/sendungsdetails?snr={number}",
    ),
    "dpd": ("DPD", "https://tracking.dpd.de/status/en_US/parcel/{number}"),
    "gls": ("GLS", "https://gls-group.com/track/{number}"),
    "hermes": ("Hermes", "https://www.myhermes.de/empfangen/sendungsverfolgung/?suche={number}"),
    "royal-mail": (
        "Royal Mail",
        "https://www.royalmail.com/track-your-item#/tracking-results/{number}",
    ),
    "canada-post": (
        "Canada Post",
        "https://www.canadapost-postescanada.ca/track-reperage/en#/search?searchFor={number}",
    ),
    "australia-post": ("Australia Post", "https://auspost.com.au/mypost/track/#/details/{number}"),
    "postnl": ("PostNL", "https://postnl.nl/tracktrace/?B={number}"),
    "posta-srbije": (
        "Pošta Srbije",
        "https://www.posta.rs/eng/alati/pracenje-posiljke.aspx?broj={number}",
    ),
}


class WooCommerceConnector(Connector):
    name = "woocommerce"
    creates_shops = False  # each webhook has its own secret: the shop must be connected first
    PAYLOAD_SHAPE = PAYLOAD_SHAPE

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

    def _order_changed(self, payload, meta, state):
        """order.created / order.updated / order.restored: every transition since the stored state."""
        version = _time(payload.get("date_modified_gmt"))
        if state.version and version and version < state.version:
            return Normalized(
                outcome="stale", detail=f"modified {iso(version)} < stored {iso(state.version)}"
            )
        order = canonical_order(payload)
        if not order["id"]:
            return missing_id("order")
        customer = canonical_customer(payload)
        before = state.extra if state.known else {}
        now = _time(payload.get("date_modified_gmt")) or meta.happened_at
        events = []

        def emit(kind, key, occurred, **subjects):
            events.append(
                self._event(kind, meta, key, occurred, order=order, customer=customer, **subjects)
            )

        created_at = _time(payload.get("date_created_gmt")) or now
        if meta.topic == "order.restored":
            emit("order.restored", f"{order['id']}@{iso(now)}", now)
        if not state.known and _announce_creation(meta, created_at):
            emit("order.created", order["id"], created_at)
        status = payload.get("status")
        paid_at = _time(payload.get("date_paid_gmt"))
        if status in PAID_STATUSES and paid_at and not before.get("paid"):
            emit("order.paid", order["id"], paid_at)
        for item in _new_trackings(payload, before):
            fulfillment = canonical_fulfillment(item, order, payload)
            emit(
                "fulfillment.created",
                fulfillment["id"],
                _time(fulfillment["created_at"]) or now,
                fulfillment=fulfillment,
            )
        if status == "completed" and before.get("status") != "completed":
            emit("order.fulfilled", order["id"], _time(payload.get("date_completed_gmt")) or now)
        if status == "cancelled" and before.get("status") != "cancelled":
            emit("order.cancelled", order["id"], now)
        for refund in _new_refunds(payload, before, order):
            emit("order.refunded", refund["id"], now, refund=refund)
        new_state = OrderState(order=order, extra=_bookkeeping(payload), version=version)
        if not events:
            return Normalized(state=new_state, outcome="no_change")
        return Normalized(events=events, state=new_state)

    def _order_deleted(self, payload, meta, state):
        """The body is only ``{"id": N}``: the event carries the stored order when there is one."""
        order_id = _id(payload.get("id"))
        occurred = meta.happened_at
        order = state.order or {"id": order_id}
        event = self._event(
            "order.deleted", meta, f"{order_id}@{iso(occurred)}", occurred, order=order
        )
        extra = {**state.extra, "deleted": True}
        return Normalized(
            events=[event], state=OrderState(order=order, extra=extra, version=state.version)
        )

    def _customer_event(kind: str):
        def handler(self, payload, meta, state):
            customer = canonical_customer_record(payload)
            if not customer.get("id"):
                return missing_id("customer")
            occurred = (
                _time(payload.get("date_modified_gmt"))
                or _time(payload.get("date_created_gmt"))
                or meta.happened_at
            )
            key = (
                customer["id"]
                if kind == "customer.created"
                else f"{customer['id']}@{iso(occurred)}"
            )
            return Normalized(events=[self._event(kind, meta, key, occurred, customer=customer)])

        return handler

    def _product_event(kind: str):
        def handler(self, payload, meta, state):
            product = _compact(
                {
                    "id": _id(payload.get("id")),
                    "sku": payload.get("sku") or None,
                    "title": payload.get("name"),
                    "handle": payload.get("slug"),
                    "product_type": ", ".join(
                        c.get("name") or "" for c in payload.get("categories") or []
                    )
                    or None,
                    "tags": [t.get("name") for t in payload.get("tags") or [] if t.get("name")],
                    "status": payload.get("status"),
                }
            )
            occurred = _time(payload.get("date_modified_gmt")) or meta.happened_at
            key = f"{product.get('id')}@{iso(occurred)}"
            return Normalized(events=[self._event(kind, meta, key, occurred, product=product)])

        return handler

    TOPIC_HANDLERS = {
        "order.created": _order_changed,
        "order.updated": _order_changed,
        "order.restored": _order_changed,
        "order.deleted": _order_deleted,
        "customer.created": _customer_event("customer.created"),
        "customer.updated": _customer_event("customer.updated"),
        "product.created": _product_event("product.created"),
        "product.updated": _product_event("product.updated"),
        "product.restored": _product_event("product.updated"),
        "product.deleted": _product_event("product.deleted"),
    }
    #: answered 200 and recorded, deliberately without events
    IGNORED_TOPICS = frozenset({"customer.deleted"})

    def normalize(self, meta: DeliveryMeta, payload: dict, state: OrderState) -> Normalized:
        """Like the base class, plus every ``coupon.*`` and ``action.*`` topic recorded as ignored."""
        if meta.topic.startswith(("coupon.", "action.")):
            return Normalized(outcome="ignored_topic")
        return super().normalize(meta, payload, state)

    def _event(self, kind, meta, key, occurred, **subjects) -> Event:
        return Event(
            kind=kind,
            shop=meta.shop,
            key=str(key),
            occurred_at=occurred,
            source={"platform": self.name, "topic": meta.topic, "delivery_id": meta.delivery_id},
            **{k: v for k, v in subjects.items() if v is not None},
        )

    # -- platform calls (REST API, connectors/woocommerce_api.py) -----------------

    def add_order_note(self, shop: ShopAccess, order_ref: str, note: str) -> dict:
        from aftersale.connectors.woocommerce_api import WooCommerceAPI

        return WooCommerceAPI(shop).add_order_note(order_ref, note)

    def create_discount_code(self, shop: ShopAccess, spec: dict) -> dict:
        from aftersale.connectors.woocommerce_api import WooCommerceAPI

        return WooCommerceAPI(shop).create_coupon(spec)


# -- payload -> canonical dicts ---------------------------------------------------


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


def canonical_order(p: dict) -> dict:
    billing = p.get("billing") or {}
    status = p.get("status")
    line_items = [canonical_line_item(item) for item in p.get("line_items") or []]
    subtotal = sum(
        (_decimal(item.get("subtotal")) for item in p.get("line_items") or []), Decimal(0)
    )
    # Every key the Shopify connector gives, None where WooCommerce has no such thing, so a
    # template written for one platform renders for the other (templates are strict).
    return {
        "id": _id(p.get("id")),
        "name": f"#{p.get('number') or p.get('id')}",
        "number": _id(p.get("number") or p.get("id")),
        "email": billing.get("email") or None,
        "phone": billing.get("phone") or None,
        "currency": p.get("currency"),
        "total_price": money(p.get("total")),
        "subtotal_price": money(subtotal),
        "total_tax": money(p.get("total_tax")),
        "total_discounts": money(p.get("discount_total")),
        "financial_status": _financial_status(p),
        "fulfillment_status": "fulfilled" if status == "completed" else None,
        "status": status,
        "tags": [],
        "locale": None,
        "accepts_marketing": None,
        "created_at": iso(_time(p.get("date_created_gmt"))),
        "updated_at": iso(_time(p.get("date_modified_gmt"))),
        "paid_at": iso(_time(p.get("date_paid_gmt"))),
        "cancelled_at": iso(_time(p.get("date_modified_gmt"))) if status == "cancelled" else None,
        "cancel_reason": None,
        "status_url": None,
        "payment_method": p.get("payment_method_title") or p.get("payment_method") or None,
        "discount_codes": [c.get("code") for c in p.get("coupon_lines") or [] if c.get("code")],
        "line_items": line_items,
        "shipping_address": _address(p.get("shipping")),
        "billing_address": _address(billing),
        "customer_id": _customer_ref(p),
    }


def canonical_line_item(item: dict) -> dict:
    variation = item.get("variation_id")
    return {
        "id": _id(item.get("id")),
        "product_id": _id(item.get("product_id")),
        "variant_id": _id(variation) if variation else None,
        "sku": item.get("sku") or None,
        "title": item.get("parent_name") or item.get("name"),
        "variant_title": item.get("name") if item.get("parent_name") else None,
        "product_type": None,
        "vendor": None,
        "quantity": item.get("quantity"),
        "price": money(item.get("price")),  # a number: line total / quantity, without tax
    }


def canonical_customer(p: dict) -> dict | None:
    """The buyer from the order's billing details (WooCommerce orders carry no consent)."""
    billing = p.get("billing") or {}
    ref = _customer_ref(p)
    if not ref:
        return None
    return _compact(
        {
            "id": ref,
            "email": billing.get("email") or None,
            "phone": billing.get("phone") or None,
            "first_name": billing.get("first_name") or None,
            "last_name": billing.get("last_name") or None,
        }
    )


def canonical_customer_record(p: dict) -> dict:
    """A customer.* payload (the customer resource itself)."""
    billing = p.get("billing") or {}
    email = p.get("email") or billing.get("email") or None
    cid = _id(p.get("id"))
    return _compact(
        {
            "id": cid if cid and cid != "0" else (f"guest:{email.lower()}" if email else None),
            "email": email,
            "phone": billing.get("phone") or None,
            "first_name": p.get("first_name") or billing.get("first_name") or None,
            "last_name": p.get("last_name") or billing.get("last_name") or None,
        }
    )


def canonical_fulfillment(item: dict, order: dict, payload: dict) -> dict:
    """A Shipment Tracking item as a fulfillment of the whole order (the extension has no items)."""
    number = (item.get("tracking_number") or "").strip() or None
    slug = (item.get("tracking_provider") or "").strip()
    custom = (item.get("custom_tracking_provider") or "").strip()
    carrier = CARRIERS.get(slug.lower().replace(" ", "-")) if slug else None
    company = custom or (carrier[0] if carrier else slug) or None
    link = (item.get("custom_tracking_link") or "").strip() or None
    if link is None and carrier and number:
        link = carrier[1].format(number=quote(number, safe=""))
    shipped = _unix_time(item.get("date_shipped"))
    return {
        "id": f"{order['id']}-{_tracking_key(item)}",
        "order_id": order["id"],
        "name": order.get("name"),
        "status": "success",
        "shipment_status": None,
        "tracking_company": company,
        "tracking_number": number,
        "tracking_numbers": [number] if number else [],
        "tracking_url": link,
        "tracking_urls": [link] if link else [],
        "line_items": [
            {
                "product_id": line.get("product_id"),
                "variant_id": line.get("variant_id"),
                "sku": line.get("sku"),
                "title": line.get("title"),
                "quantity": line.get("quantity"),
            }
            for line in order.get("line_items") or []
        ],
        "email": (payload.get("billing") or {}).get("email") or None,
        "created_at": iso(shipped),
    }


def _new_trackings(payload: dict, before: dict) -> list[dict]:
    seen = set(before.get("trackings") or [])
    return [item for item in _trackings(payload) if _tracking_key(item) not in seen]


def _new_refunds(payload: dict, before: dict, order: dict) -> list[dict]:
    """Each refund not seen before, with a positive amount; the last one says if the order is
    now fully refunded. A status set to ``refunded`` without a new entry is one refund of
    what was left."""
    seen = set(before.get("refunds") or {})
    refunds = payload.get("refunds") or []
    new = [  # oldest first
        r for r in reversed(refunds) if _id(r.get("id")) and _id(r.get("id")) not in seen
    ]
    full = payload.get("status") == "refunded" or _refunded_total(refunds) >= _decimal(
        payload.get("total")
    )
    currency = payload.get("currency")
    result = []
    for index, raw in enumerate(new):
        result.append(
            {
                "id": _id(raw.get("id")),
                "order_id": order["id"],
                "amount": money(abs(_decimal(raw.get("total")))),
                "currency": currency,
                "note": raw.get("reason") or None,
                "full": full if index == len(new) - 1 else False,
                "line_items": [],  # the webhook has totals only; items need the refunds endpoint
                "created_at": iso(_time(payload.get("date_modified_gmt"))),
            }
        )
    if not new and payload.get("status") == "refunded" and before.get("status") != "refunded":
        left = _decimal(payload.get("total")) - _refunded_total(refunds)
        result.append(
            {
                "id": f"{order['id']}-refunded",
                "order_id": order["id"],
                "amount": money(max(left, Decimal(0))),
                "currency": currency,
                "note": None,
                "full": True,
                "line_items": [],
                "created_at": iso(_time(payload.get("date_modified_gmt"))),
            }
        )
    return result


def _bookkeeping(payload: dict) -> dict:
    """What the next diff compares against: status, paid, refunds and tracking items seen."""
    return {
        "status": payload.get("status"),
        "paid": bool(payload.get("date_paid_gmt"))
        and payload.get("status") in PAID_STATUSES | {"refunded", "cancelled"},
        "refunds": {
            _id(r.get("id")): money(abs(_decimal(r.get("total"))))
            for r in payload.get("refunds") or []
            if _id(r.get("id"))
        },
        "trackings": [_tracking_key(item) for item in _trackings(payload)],
    }


def _trackings(payload: dict) -> list[dict]:
    for meta in payload.get("meta_data") or []:
        if meta.get("key") == TRACKING_META and isinstance(meta.get("value"), list):
            return [item for item in meta["value"] if isinstance(item, dict)]
    return []


def _tracking_key(item: dict) -> str:
    if item.get("tracking_id"):
        return str(item["tracking_id"])
    provider = item.get("tracking_provider") or item.get("custom_tracking_provider") or ""
    return f"{provider}:{item.get('tracking_number') or ''}"


def _announce_creation(meta: DeliveryMeta, created_at: datetime) -> bool:
    if meta.topic == "order.created":
        return True
    if meta.topic == "order.restored":
        return False
    return (meta.happened_at or datetime.now(UTC)) - created_at <= FIRST_SIGHT_CREATED_WITHIN


def _financial_status(p: dict) -> str | None:
    status = p.get("status")
    if status == "refunded":
        return "refunded"
    if p.get("refunds"):
        return "partially_refunded"
    if p.get("date_paid_gmt") and status in PAID_STATUSES:
        return "paid"
    if status in ("pending", "on-hold", "failed", "checkout-draft"):
        return "pending"
    return None


def _customer_ref(p: dict) -> str | None:
    cid = p.get("customer_id")
    if cid not in (None, 0, "0", ""):
        return str(cid)
    email = (p.get("billing") or {}).get("email")
    return f"guest:{email.lower()}" if email else None


def _address(raw: dict | None) -> dict | None:
    if not raw:
        return None
    address = _compact(
        {
            "first_name": raw.get("first_name"),
            "last_name": raw.get("last_name"),
            "company": raw.get("company"),
            "address1": raw.get("address_1"),
            "address2": raw.get("address_2"),
            "city": raw.get("city"),
            "province": raw.get("state"),
            "zip": raw.get("postcode"),
            "country": raw.get("country"),
            "country_code": raw.get("country"),
            "phone": raw.get("phone"),
        }
    )
    return address or None


def _refunded_total(refunds: list) -> Decimal:
    return sum((abs(_decimal(r.get("total"))) for r in refunds), Decimal(0))


def _unix_time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value).strip()), UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        return None
