"""Shopify payloads -> canonical events, one test per fixture, and a check that none is unused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.shopify import ShopifyConnector, canonical_order
from aftersale.core.events import FIELDS
from tests.helpers import FIXTURES, load_fixture

connector = ShopifyConnector()
ORDER = "5678901234567"
FULFILLMENT = "4567890123456"
RECEIVED = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # after every fixture happened


def meta(topic: str) -> DeliveryMeta:
    return DeliveryMeta(
        platform="shopify",
        shop="aftersale-demo.myshopify.com",
        topic=topic,
        delivery_id="wh-1",
        event_id="ev-1",
        received_at=RECEIVED,
    )


def known_order_state() -> OrderState:
    payload = load_fixture("shopify", "orders__create")
    return OrderState(
        order=canonical_order(payload),
        extra={},
        version=datetime(2026, 11, 20, 15, 15, 5, tzinfo=UTC),
    )


def normalize(name: str, state: OrderState | None = None):
    topic = "/".join(name.split("__")[:2])
    return connector.normalize(meta(topic), load_fixture("shopify", name), state or OrderState())


#: fixture -> (expected kinds with keys, outcome)
EXPECTED = {
    "orders__create": ([("order.created", ORDER)], "processed"),
    "orders__create__no_email": ([("order.created", "5678901299999")], "processed"),
    "orders__paid": ([("order.paid", ORDER)], "processed"),
    "orders__cancelled": ([("order.cancelled", ORDER)], "processed"),
    "orders__fulfilled": ([("order.fulfilled", ORDER)], "processed"),
    "orders__updated": ([], "processed"),
    "fulfillments__create": ([("fulfillment.created", FULFILLMENT)], "processed"),
    "fulfillments__update__in_transit": (
        [("shipment.in_transit", f"{FULFILLMENT}:shipment.in_transit")],
        "processed",
    ),
    "fulfillments__update__out_for_delivery": (
        [("shipment.out_for_delivery", f"{FULFILLMENT}:shipment.out_for_delivery")],
        "processed",
    ),
    "fulfillments__update__attempted_delivery": (
        [("shipment.attempted", f"{FULFILLMENT}:shipment.attempted")],
        "processed",
    ),
    # the order's only fulfillment delivered: the whole order is delivered too
    "fulfillments__update__delivered": (
        [
            ("shipment.delivered", f"{FULFILLMENT}:shipment.delivered"),
            ("order.delivered", ORDER),
        ],
        "processed",
    ),
    # split shipments (test_split_shipments.py); alone, without the order's items, a
    # delivered parcel is the whole order
    "fulfillments__create__first_parcel": ([("fulfillment.created", FULFILLMENT)], "processed"),
    "fulfillments__create__second_parcel": (
        [("fulfillment.created", "4567890123457")],
        "processed",
    ),
    **{
        f"fulfillments__update__{name}_delivered": (
            [("shipment.delivered", f"{ref}:shipment.delivered"), ("order.delivered", ORDER)],
            "processed",
        )
        for name, ref in (
            ("first_parcel", FULFILLMENT),
            ("second_parcel", "4567890123457"),
            ("partial_parcel", "4567890123458"),
        )
    },
    "fulfillments__update__failure": (
        [("shipment.failed", f"{FULFILLMENT}:shipment.failed")],
        "processed",
    ),
    "fulfillments__update__unknown_status": ([], "unknown_status"),
    "fulfillment_events__create": (
        [
            ("shipment.delivered", f"{FULFILLMENT}:shipment.delivered"),
            ("order.delivered", ORDER),
        ],
        "processed",
    ),
    "refunds__create": ([("order.refunded", "930123456789")], "processed"),
    "refunds__create__full": ([("order.refunded", "930123456790")], "processed"),
    "returns__request": ([("return.requested", "1234567123")], "processed"),
    "returns__close": ([("return.closed", "1234567123")], "processed"),
    "customers__create": ([("customer.created", "7012345678901")], "processed"),
    "customers__update": (
        [("customer.updated", "7012345678901@2026-11-22T15:00:00Z")],
        "processed",
    ),
    "customers__email_marketing_consent_update": (
        [("customer.consent_updated", "7012345678901@2026-11-20T15:15:04Z")],
        "processed",
    ),
    "customers_email_marketing_consent__update": (
        [("customer.consent_updated", "7012345678901@2026-11-20T15:15:04Z")],
        "processed",
    ),
    "customers_marketing_consent__update": (
        [("customer.consent_updated", "7012345678901:sms@2026-11-20T15:15:04Z")],
        "processed",
    ),
    "customers__redact": ([("customer.redact", "ev-1")], "processed"),
    "customers__data_request": ([("customer.data_request", "ev-1")], "processed"),
    "shop__redact": ([("shop.redact", "ev-1")], "processed"),
    "app__uninstalled": ([("app.uninstalled", "ev-1")], "processed"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalizes_to_expected_events(name):
    expected, outcome = EXPECTED[name]
    result = normalize(name, known_order_state())
    assert [(e.kind, e.key) for e in result.events] == expected
    assert result.outcome == outcome
    for event in result.events:
        assert event.shop == "aftersale-demo.myshopify.com"
        assert event.occurred_at.tzinfo is not None
        assert event.source == {
            "platform": "shopify",
            "topic": "/".join(name.split("__")[:2]),
            "delivery_id": "wh-1",
        }
        _assert_canonical_fields(event)


def _assert_canonical_fields(event):
    """Every key a connector produces is in the documented model, so rules can name it."""
    for subject, data in event.subjects().items():
        if not data:
            continue
        allowed = FIELDS[subject]
        for key, value in data.items():
            assert key in allowed, f"{subject}.{key} is not in aftersale.events.FIELDS"
            nested = allowed[key]
            if isinstance(nested, dict) and isinstance(value, list):
                for element in value:
                    assert set(element) <= set(nested), (
                        f"{subject}.{key}: {set(element) - set(nested)}"
                    )


def test_order_created_carries_the_canonical_order_and_customer():
    (event,) = normalize("orders__create").events
    order, customer = event.order, event.customer
    assert order["id"] == ORDER and order["name"] == "#1042" and order["number"] == "1042"
    assert (
        order["currency"] == "RSD"
        and order["total_price"] == "4590.00"
        and order["subtotal_price"] == "4590.00"
    )
    assert order["financial_status"] == "paid" and order["fulfillment_status"] is None
    assert order["locale"] == "sr" and order["tags"] == []
    assert order["created_at"] == "2026-11-20T15:15:03Z"
    assert [(i["sku"], i["quantity"], i["price"]) for i in order["line_items"]] == [
        ("CARE-KIT-01", 1, "1990.00"),
        (None, 2, "1300.00"),
    ]
    assert order["line_items"][0]["product_id"] == "8061536829755"
    assert order["shipping_address"]["country_code"] == "RS"
    assert customer["id"] == "7012345678901" and customer["email"] == "ana.petrovic@example.com"
    assert customer["first_name"] == "Ana" and customer["locale"] == "sr"
    assert (
        customer["accepts_email_marketing"] is True
    )  # from buyer_accepts_marketing: 2025-01+ has no consent object
    assert event.occurred_at == datetime(2026, 11, 20, 15, 15, 3, tzinfo=UTC)


def test_an_order_without_protected_data_has_no_email():
    (event,) = normalize("orders__create__no_email").events
    assert event.order["email"] is None
    assert event.customer is None or not event.customer.get("email")


def test_tags_are_split():
    order = canonical_order(load_fixture("shopify", "orders__updated"))
    assert order["tags"] == ["gift", "vip"]


def test_fulfillment_events_take_the_order_from_stored_state():
    (event,) = normalize("fulfillments__create", known_order_state()).events
    assert event.order["id"] == ORDER and event.order["total_price"] == "4590.00"
    fulfillment = event.fulfillment
    assert fulfillment["tracking_company"] == "DHL Express"
    assert fulfillment["tracking_number"] == "1234567890"
    assert fulfillment["tracking_url"].startswith("https://www.dhl.com/")
    assert [i["title"] for i in fulfillment["line_items"]] == [
        "Leather shoe care kit",
        "Merino wool socks",
    ]


def test_a_fulfillment_before_its_order_still_produces_an_event():
    (event,) = normalize("fulfillments__create").events
    assert event.order == {"id": ORDER}


def test_shipment_statuses_never_go_backwards_after_delivery():
    delivered = normalize("fulfillments__update__delivered", known_order_state())
    late_in_transit = normalize("fulfillments__update__in_transit", delivered.state)
    assert late_in_transit.events == [] and late_in_transit.outcome == "stale"


def test_an_older_shipment_update_is_stale():
    out = normalize("fulfillments__update__out_for_delivery", known_order_state())
    older = normalize("fulfillments__update__in_transit", out.state)
    assert older.events == [] and older.outcome == "stale"


def test_fulfillment_event_keeps_tracking_from_the_fulfillment():
    created = normalize("fulfillments__create", known_order_state())
    event, whole_order = normalize("fulfillment_events__create", created.state).events
    assert whole_order.kind == "order.delivered"
    assert event.fulfillment["tracking_number"] == "1234567890"
    assert event.fulfillment["location"] == {"city": "Beograd", "country": "Serbia", "zip": "11000"}


def test_refund_amount_is_the_sum_of_successful_refund_transactions():
    (event,) = normalize("refunds__create", known_order_state()).events
    refund = event.refund
    assert (refund["amount"], refund["currency"]) == ("1300.00", "RSD")
    assert refund["full"] is False
    assert refund["line_items"][0]["title"] == "Merino wool socks"
    partial = normalize("refunds__create", known_order_state())
    (full,) = normalize("refunds__create__full", partial.state).events
    assert full.refund["full"] is True


@pytest.mark.parametrize("name", ["returns__request", "returns__close"])
def test_return_events_know_their_order(name):
    (event,) = normalize(name).events
    assert event.order_ref == ORDER
    assert (
        connector.order_ref("/".join(name.split("__")[:2]), load_fixture("shopify", name)) == ORDER
    )


def test_consent_update_carries_the_consent():
    (event,) = normalize("customers__email_marketing_consent_update").events
    assert event.customer == {
        "id": "7012345678901",
        "email": "ana.petrovic@example.com",
        "accepts_email_marketing": True,
        "email_marketing_consent": {
            "state": "subscribed",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": "2026-11-20T15:15:04Z",
        },
    }


def test_an_older_orders_updated_does_not_overwrite_newer_state():
    newer = normalize("orders__updated", known_order_state())
    older = normalize("orders__paid", newer.state)
    assert older.state is None  # older than what is stored: keep the stored order


def test_unknown_topics_are_recorded_not_errors():
    result = connector.normalize(meta("carts/update"), {"id": "x"}, OrderState())
    assert (result.events, result.outcome) == ([], "unsupported_topic")


def test_every_fixture_is_tested_and_every_topic_has_a_fixture():
    fixtures = {p.stem for p in (FIXTURES / "shopify").glob("*.json")}
    assert fixtures == set(EXPECTED), (
        "a fixture without an expectation, or an expectation without a fixture"
    )
    covered = {"/".join(name.split("__")[:2]) for name in fixtures}
    untested = set(ShopifyConnector.TOPIC_HANDLERS) - covered
    allowed_without_fixture = {
        "orders/partially_fulfilled",
        "returns/approve",
        "returns/decline",
        "returns/cancel",
        "products/create",
        "products/update",
        "products/delete",
    }
    assert untested <= allowed_without_fixture, (
        f"handlers without a fixture: {sorted(untested - allowed_without_fixture)}"
    )
