"""Split shipments: ``order.delivered`` once, when the order's last item (or parcel) arrives.

Shopify: order #1042 (a care kit and two cups) ships in two parcels, each
fulfillment listing its line items with quantities (tests/fixtures/shopify,
``fulfillments__*__first_parcel`` / ``second_parcel``). WooCommerce: order
4821 ships with two tracking numbers, delivered one after the other as
TrackShip reports them. Refunded items are not waited for.
"""

from __future__ import annotations

import pytest

from aftersale.store.tables import events
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, post_shopify, rows
from tests.test_woocommerce import post, woo_shop  # noqa: F401


@pytest.fixture
def rules_dir(tmp_path):
    """No rules: these tests are about which events the deliveries mean."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "settings.yaml").write_text('sender: "Shop <shop@example.com>"\n')
    return folder


SHOPIFY_TOPICS = {
    "orders__create": "orders/create",
    "refunds__create": "refunds/create",
    "fulfillments__create__first_parcel": "fulfillments/create",
    "fulfillments__create__second_parcel": "fulfillments/create",
    "fulfillments__update__first_parcel_delivered": "fulfillments/update",
    "fulfillments__update__second_parcel_delivered": "fulfillments/update",
    "fulfillments__update__partial_parcel_delivered": "fulfillments/update",
}


def shopify(client, work, name: str) -> None:
    body = fixture_bytes("shopify", name)
    assert post_shopify(client, SHOPIFY_TOPICS[name], body, SHOPIFY_SECRET).status_code == 200
    work()


def kinds(runtime) -> list[str]:
    return [e.kind for e in rows(runtime.engine, events)]


def test_shopify_two_parcels_deliver_the_order_once_after_the_second(client, runtime, work):
    for name in [
        "orders__create",
        "fulfillments__create__first_parcel",
        "fulfillments__create__second_parcel",
        "fulfillments__update__first_parcel_delivered",
    ]:
        shopify(client, work, name)
    # one parcel of two arrived (the order webhook never said "partially fulfilled")
    assert kinds(runtime).count("shipment.delivered") == 1
    assert "order.delivered" not in kinds(runtime)

    shopify(client, work, "fulfillments__update__second_parcel_delivered")
    shopify(client, work, "fulfillments__update__first_parcel_delivered")  # a late repeat
    assert kinds(runtime).count("shipment.delivered") == 2
    (delivered,) = [e for e in rows(runtime.engine, events) if e.kind == "order.delivered"]
    last = [e for e in rows(runtime.engine, events) if e.kind == "shipment.delivered"][-1]
    assert delivered.id > last.id and delivered.occurred_at == last.occurred_at
    assert last.fulfillment_ref == "4567890123457"


def test_shopify_a_refunded_item_is_not_waited_for(client, runtime, work):
    # the parcel holds the kit and one cup; the other cup was refunded before it arrived
    for name in ["orders__create", "refunds__create"]:
        shopify(client, work, name)
    shopify(client, work, "fulfillments__update__partial_parcel_delivered")
    assert kinds(runtime).count("order.delivered") == 1


def test_shopify_items_still_to_ship_hold_the_order_back(client, runtime, work):
    shopify(client, work, "orders__create")
    shopify(client, work, "fulfillments__update__partial_parcel_delivered")
    assert "shipment.delivered" in kinds(runtime)
    assert "order.delivered" not in kinds(runtime)


def test_woocommerce_two_tracking_numbers_deliver_the_order_once_after_the_second(
    client, runtime, woo_shop, work
):
    post(client, "order.updated__two_parcels")
    post(client, "order.updated__two_parcels_first_delivered")
    work()
    assert kinds(runtime).count("shipment.delivered") == 1
    assert "order.delivered" not in kinds(runtime)
    # the same update again, through another webhook: nothing new
    post(client, "order.updated__two_parcels_first_delivered", **{"X-WC-Webhook-ID": "12"})
    work()
    assert kinds(runtime).count("shipment.delivered") == 1

    post(client, "order.updated__two_parcels_second_delivered")
    work()
    found = kinds(runtime)
    assert found.count("shipment.delivered") == 2 and found.count("order.delivered") == 1
    assert found[-2:] == ["shipment.delivered", "order.delivered"]
