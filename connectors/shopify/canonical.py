"""Shopify payloads -> the canonical dicts events carry (order, line item, customer, ...).

Kept apart from the topic handlers because this is the contract rules and
templates are written against (``core.events.FIELDS``): the WooCommerce
connector gives the same keys, so one rule file serves both platforms, and a
change here is a change every template sees. Pure functions of the payload;
absent facts stay absent (None or left out), never blank.
"""

from __future__ import annotations

from aftersale.connectors.base import OrderState
from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import decimal_or_zero as _decimal
from aftersale.connectors.base import ref as _id
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.sanitize import shape
from aftersale.core.events import ADDRESS_KEYS, iso, money

#: what each key this package reads must be; anything else is missing, with a warning
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
    "return_reason return_reason_note customer_note opt_in_level",
    scalars="id order_id fulfillment_id customer_id line_item_id product_id variant_id "
    "order_number number quantity orders_count buyer_accepts_marketing",
)


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
        "tags": tag_list(p.get("tags")),
        "locale": p.get("customer_locale"),
        "accepts_marketing": p.get("buyer_accepts_marketing"),
        "created_at": iso(_time(p.get("created_at"))),
        "updated_at": iso(_time(p.get("updated_at"))),
        "cancelled_at": iso(_time(p.get("cancelled_at"))),
        "cancel_reason": p.get("cancel_reason"),
        "status_url": p.get("order_status_url"),
        "discount_codes": [d.get("code") for d in p.get("discount_codes") or [] if d.get("code")],
        "line_items": [canonical_line_item(item) for item in p.get("line_items") or []],
        "shipping_address": address(p.get("shipping_address")),
        "billing_address": address(p.get("billing_address")),
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
    billing_or_shipping = (
        raw.get("default_address")
        or order.get("billing_address")
        or order.get("shipping_address")
        or {}
    )
    accepts_email = consent_state(raw.get("email_marketing_consent"))
    if accepts_email is None and order.get("buyer_accepts_marketing") is not None:
        accepts_email = bool(order.get("buyer_accepts_marketing"))
    return _compact(
        {
            "id": cid or f"guest:{email.lower()}",
            "email": email or None,
            "phone": raw.get("phone") or order.get("phone") or None,
            "first_name": raw.get("first_name") or billing_or_shipping.get("first_name"),
            "last_name": raw.get("last_name") or billing_or_shipping.get("last_name"),
            "locale": order.get("customer_locale") or raw.get("locale"),
            "tags": tag_list(raw.get("tags")) if raw.get("tags") is not None else None,
            "orders_count": raw.get("orders_count"),
            "accepts_email_marketing": accepts_email,
            "accepts_sms_marketing": consent_state(raw.get("sms_marketing_consent")),
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
                "id": _id(item.get("id")),  # the order's line item
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


# -- small pieces, shared with the topic handlers ---------------------------------------


def return_order_id(payload: dict) -> str | None:
    """returns/request nests the order (``order.id``); returns/close has a top-level ``order_id``."""
    order = payload.get("order")
    return _id((order.get("id") if isinstance(order, dict) else None) or payload.get("order_id"))


def consent_state(consent) -> bool | None:
    """``{"state": "subscribed"}`` -> True; None when the payload says nothing about consent."""
    if not isinstance(consent, dict) or not consent.get("state"):
        return None
    return consent["state"] == "subscribed"


def address(raw: dict | None) -> dict | None:
    """An address with the canonical keys (Shopify's own names are the canonical ones)."""
    if not raw:
        return None
    return _compact({k: raw.get(k) for k in ADDRESS_KEYS})


def tag_list(value) -> list[str]:
    """Tags as a list: Shopify sends a comma-separated string (or, in places, a list)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value).split(",") if t.strip()]
