"""WooCommerce payloads -> the canonical dicts events carry, in the Shopify connector's shape.

Kept apart from the topic handlers because this is the contract rules and
templates are written against (``core.events.FIELDS``): every key the Shopify
connector gives is here too, None where WooCommerce has no such thing, so one
rule file and one template serve both platforms. Also the Shipment Tracking
extension's items (``meta_data``), read as fulfillments, and the carriers whose
tracking links can be built from a slug. Pure functions of the payload.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote

from aftersale.connectors.base import compact as _compact
from aftersale.connectors.base import decimal_or_zero as _decimal
from aftersale.connectors.base import ref as _id
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.sanitize import shape
from aftersale.connectors.woocommerce import customer_meta
from aftersale.core.events import iso, money

TRACKING_META = "_wc_shipment_tracking_items"

PAID_STATUSES = frozenset({"processing", "completed", "on-hold"})
#: WooCommerce's own statuses; any other is a plugin's (``shipped``, ``delivered``,
#: ``partial-shipped``), which stores move orders to after payment
CORE_STATUSES = PAID_STATUSES | frozenset(
    {"pending", "cancelled", "refunded", "failed", "checkout-draft", "trash", "auto-draft"}
)


def paid_status(status) -> bool:
    """Whether an order in this status with a payment date counts as paid."""
    return status in PAID_STATUSES or (isinstance(status, str) and status not in CORE_STATUSES)


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
    locales="lang",  # Polylang Pro's order language (customer_meta.py)
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
        "locale": customer_meta.language(p),
        "accepts_marketing": _checkout_consent(p).get("accepts_email_marketing"),
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
        "customer_id": customer_ref(p),
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
    """The buyer from the order's billing details, with the consent and language that
    plugins wrote into the order's meta (customer_meta.py); unknown when none did."""
    billing = p.get("billing") or {}
    ref = customer_ref(p)
    if not ref:
        return None
    return _compact(
        {
            "id": ref,
            "email": billing.get("email") or None,
            "phone": billing.get("phone") or None,
            "first_name": billing.get("first_name") or None,
            "last_name": billing.get("last_name") or None,
            "locale": customer_meta.language(p),
            **_checkout_consent(p),
        }
    )


def canonical_customer_record(p: dict) -> dict:
    """A customer.* payload (the customer resource itself), with consent and language from the
    WordPress user's meta (present only when the webhook's user is an administrator)."""
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
            "locale": customer_meta.language(p),
            **customer_meta.consent_fields(
                p, _time(p.get("date_modified_gmt")) or _time(p.get("date_created_gmt"))
            ),
        }
    )


def _checkout_consent(p: dict) -> dict:
    """Consent ticked (or not) at checkout: the boxes' meta is written when the order is
    placed, so that is when the consent was given."""
    return customer_meta.consent_fields(p, _time(p.get("date_created_gmt")))


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
        "id": f"{order['id']}-{tracking_key(item)}",
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


# -- small pieces, shared with the topic handlers -----------------------------------


def trackings(payload: dict) -> list[dict]:
    for meta in payload.get("meta_data") or []:
        if meta.get("key") == TRACKING_META and isinstance(meta.get("value"), list):
            return [item for item in meta["value"] if isinstance(item, dict)]
    return []


def tracking_key(item: dict) -> str:
    if item.get("tracking_id"):
        return str(item["tracking_id"])
    provider = item.get("tracking_provider") or item.get("custom_tracking_provider") or ""
    return f"{provider}:{item.get('tracking_number') or ''}"


def _financial_status(p: dict) -> str | None:
    status = p.get("status")
    if status == "refunded":
        return "refunded"
    if p.get("refunds"):
        return "partially_refunded"
    if p.get("date_paid_gmt") and paid_status(status):
        return "paid"
    if status in ("pending", "on-hold", "failed", "checkout-draft"):
        return "pending"
    return None


def customer_ref(p: dict) -> str | None:
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


def _unix_time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value).strip()), UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        return None
