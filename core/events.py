"""The canonical event model: what every connector produces and every rule consumes.

A connector turns one platform delivery into zero or more :class:`Event`
objects. Their subject dicts (``order``, ``customer``, ``fulfillment``,
``refund``, ``return``) have the same keys whatever the platform, so one rule
file and one template serve Shopify and WooCommerce alike. Ids are strings,
money is a Decimal string with the order's currency beside it, times are UTC
ISO 8601 strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

ORDER_KINDS = (
    "order.created",
    "order.paid",
    "order.fulfilled",
    "order.partially_fulfilled",
    "order.cancelled",
    "order.refunded",
    "order.delivered",
    "order.deleted",
    "order.restored",
)
SHIPMENT_KINDS = (
    "fulfillment.created",
    "shipment.in_transit",
    "shipment.out_for_delivery",
    "shipment.ready_for_pickup",
    "shipment.delayed",
    "shipment.attempted",
    "shipment.delivered",
    "shipment.failed",
)
RETURN_KINDS = (
    "return.requested",
    "return.approved",
    "return.declined",
    "return.cancelled",
    "return.closed",
)
CUSTOMER_KINDS = ("customer.created", "customer.updated", "customer.consent_updated")
PRIVACY_KINDS = ("customer.redact", "customer.data_request", "shop.redact", "app.uninstalled")
PRODUCT_KINDS = ("product.created", "product.updated", "product.deleted")
#: what customers do with the signed links in messages (webhooks/links.py); rules may
#: cancel on them (a review reminder is cancelled by a click on the invite's review link)
LINK_KINDS = (
    "link.review_clicked",
    "link.help_clicked",
    "link.unsubscribed",
    "link.product_clicked",  # a recommended product (issue 25)
)

EVENT_KINDS: frozenset[str] = frozenset(
    ORDER_KINDS
    + SHIPMENT_KINDS
    + RETURN_KINDS
    + CUSTOMER_KINDS
    + PRIVACY_KINDS
    + PRODUCT_KINDS
    + LINK_KINDS
)
SUBJECTS = ("order", "customer", "fulfillment", "refund", "return", "product")


@dataclass
class Event:
    """One thing that happened in a store, in platform-neutral terms.

    ``key`` identifies the happening within its kind and shop (an order id for
    ``order.paid``, a refund id for ``order.refunded``, fulfillment id and
    status for shipment events), so the same happening reported twice, by a
    retried delivery or by two overlapping topics, is stored and acted on once.
    """

    kind: str
    shop: str
    key: str
    occurred_at: datetime
    order: dict | None = None
    customer: dict | None = None
    fulfillment: dict | None = None
    refund: dict | None = None
    return_: dict | None = None
    product: dict | None = None
    source: dict = field(default_factory=dict)
    #: what was odd in the payload: values treated as missing, a time clamped, a value
    #: truncated to fit its column. Stored with the event (``payload["warnings"]``, only
    #: when there are any, so events stored before this field read back the same).
    warnings: list[str] = field(default_factory=list)
    #: facts computed for judging only, never stored: ``recommendations`` (rules/catalog_facts.py)
    facts: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")

    @property
    def order_ref(self) -> str | None:
        return _ref(self.order)

    @property
    def customer_ref(self) -> str | None:
        return _ref(self.customer)

    @property
    def fulfillment_ref(self) -> str | None:
        return _ref(self.fulfillment)

    def subjects(self) -> dict:
        """The subject dicts by their canonical names (``return`` without the underscore)."""
        return {
            "order": self.order,
            "customer": self.customer,
            "fulfillment": self.fulfillment,
            "refund": self.refund,
            "return": self.return_,
            "product": self.product,
        }

    def to_dict(self) -> dict:
        data = {
            "kind": self.kind,
            "shop": self.shop,
            "key": self.key,
            "occurred_at": iso(self.occurred_at),
            "source": self.source,
        }
        data.update({k: v for k, v in self.subjects().items() if v is not None})
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        return cls(
            kind=data["kind"],
            shop=data["shop"],
            key=data["key"],
            occurred_at=parse_time(data["occurred_at"]),
            order=data.get("order"),
            customer=data.get("customer"),
            fulfillment=data.get("fulfillment"),
            refund=data.get("refund"),
            return_=data.get("return"),
            product=data.get("product"),
            source=data.get("source") or {},
            warnings=list(data.get("warnings") or []),
        )

    def context(self) -> dict:
        """The dict rules and templates see: subjects plus ``event`` and ``shop``."""
        ctx = {k: v for k, v in self.subjects().items() if v is not None}
        ctx["event"] = {"kind": self.kind, "occurred_at": iso(self.occurred_at), "key": self.key}
        ctx["shop"] = {"domain": self.shop}
        ctx.update(self.facts)
        return ctx


def subjects_of(kind: str) -> tuple[str, ...]:
    """The subjects an event of ``kind`` carries, so templates can be checked per kind."""
    if kind == "order.refunded":
        return ("order", "customer", "refund")
    if kind in SHIPMENT_KINDS:
        return ("order", "customer", "fulfillment")
    if kind in RETURN_KINDS:
        return ("order", "customer", "return")
    if kind in LINK_KINDS:
        return ("order", "customer", "product")
    if kind in ORDER_KINDS:
        return ("order", "customer")
    if kind in PRODUCT_KINDS:
        return ("product",)
    return ("customer",)


def _ref(subject: dict | None) -> str | None:
    if not subject or subject.get("id") in (None, ""):
        return None
    return str(subject["id"])


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a ``Z``, the one time format inside events."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: str | datetime | None, *, naive_is_utc: bool = True) -> datetime | None:
    """Parse an ISO 8601 time as platforms send it (offsets, ``Z``, or naive GMT) into UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"time without offset: {value!r}")
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def money(value) -> str | None:
    """Normalize an amount to a plain Decimal string ("4590.00"); None stays None."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    return f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else str(amount)


#: The keys of a canonical address (an order's shipping_address and billing_address).
#: Listed once: connectors build addresses with exactly these keys, and rules and
#: templates are checked against them (FIELDS below).
ADDRESS_KEYS = (
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

#: The canonical fields rules and templates may use, per subject. ``None`` is a
#: leaf; a dict describes the fields of a nested object or of each list element;
#: ``"*"`` allows any key below. Rule paths are checked against this at load
#: time, so ``order.totl_price`` is an error with a suggestion, not a silent False.
_ADDRESS = dict.fromkeys(ADDRESS_KEYS)
_LINE_ITEM = dict.fromkeys(
    (
        "id",
        "product_id",
        "variant_id",
        "sku",
        "title",
        "variant_title",
        "product_type",
        "vendor",
        "quantity",
        "price",
        "tags",
        # from the stored catalog at enrichment (rules/catalog_facts.py)
        "categories",
        "image_url",
        "image_alt",
    )
)
FIELDS: dict[str, dict] = {
    "order": {
        **dict.fromkeys(
            (
                "id",
                "name",
                "number",
                "email",
                "phone",
                "currency",
                "total_price",
                "subtotal_price",
                "total_tax",
                "total_discounts",
                "financial_status",
                "fulfillment_status",
                "status",
                "tags",
                "locale",
                "accepts_marketing",
                "created_at",
                "updated_at",
                "paid_at",
                "cancelled_at",
                "cancel_reason",
                "status_url",
                # when the order's products are due again (rules/repurchase.py)
                "repurchase_due_at",
                "discount_codes",
                "customer_id",
                "ids",
                "payment_method",
            )
        ),
        "line_items": _LINE_ITEM,
        "repurchase_cycle": dict.fromkeys(("scope", "ref", "median_days", "observations")),
        "shipping_address": _ADDRESS,
        "billing_address": _ADDRESS,
    },
    "customer": {
        **dict.fromkeys(
            (
                "id",
                "email",
                "phone",
                "first_name",
                "last_name",
                "locale",
                "tags",
                "orders_count",
                "accepts_email_marketing",
                "accepts_sms_marketing",
                # history facts, from stored orders (rules/history.py)
                "total_spent",
                "last_order_at",
                # catalog facts, from stored order lines (rules/history.py catalog_history)
                "product_types",
                "categories",
                "lifetime_orders",
                "lifetime_spent",
                "currency",
            )
        ),
        "type_history": dict.fromkeys(("product_type", "first_at", "last_at", "orders")),
        "purchases": dict.fromkeys(
            ("sku", "product_id", "variant_id", "product_type", "title", "at")
        ),
        # the consent record behind accepts_* (Shopify's consent webhooks; store/state.py)
        "email_marketing_consent": dict.fromkeys(("state", "opt_in_level", "consent_updated_at")),
        "sms_marketing_consent": dict.fromkeys(("state", "opt_in_level", "consent_updated_at")),
    },
    "fulfillment": {
        **dict.fromkeys(
            (
                "id",
                "order_id",
                "name",
                "status",
                "shipment_status",
                "tracking_company",
                "tracking_number",
                "tracking_numbers",
                "tracking_url",
                "tracking_urls",
                "created_at",
                "message",
                "estimated_delivery_at",
                "estimated",
                "email",
            )
        ),
        "location": dict.fromkeys(("city", "province", "country", "zip")),
        "line_items": dict.fromkeys(("id", "product_id", "variant_id", "sku", "title", "quantity")),
    },
    "refund": {
        **dict.fromkeys(("id", "order_id", "amount", "currency", "note", "full", "created_at")),
        "line_items": dict.fromkeys(("line_item_id", "title", "sku", "quantity", "subtotal")),
    },
    "return": {
        **dict.fromkeys(("id", "status", "name")),
        "line_items": dict.fromkeys(("id", "quantity", "reason", "note")),
    },
    "product": dict.fromkeys(
        (
            *("id", "sku", "title", "handle", "product_type", "vendor", "tags", "status"),
            # the catalog's facts (connectors/<platform>/products.py)
            *("url", "categories", "price", "image_url", "image_alt", "published", "in_stock"),
            "updated_at",
        )
    ),
    "event": dict.fromkeys(("kind", "occurred_at", "key")),
    "shop": dict.fromkeys(("domain", "name", "logo_url")),
    # what a cross-sell mail would offer (store/goes_with.py), judged when a rule asks
    "recommendations": dict.fromkeys(("count",)),
}
