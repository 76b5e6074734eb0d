"""Shopify deliveries are accepted only from shops that installed the app, once per body.

Shopify signs only the body, with one app secret for every shop. A captured
``orders/create`` re-sent with three other ``X-Shopify-Shop-Domain`` values
used to create three shops and send three more thank-you mails; re-sent as
``orders/cancelled`` it cancelled an order nobody cancelled. Now: unknown or
uninstalled shops get 401 (the privacy topics and ``app/uninstalled`` get 200,
stored only for a shop we know), the same body is stored once per shop and
topic whatever its webhook id, and a body not shaped like its topic is
recorded as rejected by processing, with no events.
"""

from __future__ import annotations

import json

import pytest

from aftersale.store import shops as shop_store
from aftersale.store.tables import deliveries, events, shops
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import (
    DEMO_SHOP,
    count,
    fixture_bytes,
    install_shop,
    load_fixture,
    post_shopify,
    rows,
    shopify_headers,
)

OTHERS = ("victim-1.myshopify.com", "victim-2.myshopify.com", "victim-3.myshopify.com")
COMPLIANCE = ("customers/data_request", "customers/redact", "shop/redact", "app/uninstalled")


def replay(client, topic: str, body: bytes, shop: str, webhook_id: str | None = None):
    """What an attacker can do: the captured bytes and signature, headers of their choosing."""
    headers = shopify_headers(topic, body, SHOPIFY_SECRET, shop=shop, webhook_id=webhook_id)
    return client.post("/webhooks/shopify", data=body, headers=headers)


def drain(app):
    assert app.extensions["aftersale.receiver"].writer.drain()


def test_a_captured_order_replayed_as_other_shops_is_refused(
    client, app, runtime, work, smtp_server
):
    body = fixture_bytes("shopify", "orders__create")
    assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    answers = [replay(client, "orders/create", body, shop).status_code for shop in OTHERS]
    work()

    assert answers == [401, 401, 401]
    assert [s.domain for s in rows(runtime.engine, shops)] == [DEMO_SHOP]
    assert count(runtime.engine, deliveries) == 1
    assert len(smtp_server.handler.messages) == 1  # the one real thank-you


def test_the_same_body_under_a_new_webhook_id_is_a_duplicate(client, app, runtime):
    body = fixture_bytes("shopify", "orders__create")
    first = post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id="real")
    again = replay(client, "orders/create", body, DEMO_SHOP, webhook_id="forged")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json["status"] == "duplicate"
    drain(app)
    (row,) = rows(runtime.engine, deliveries)
    assert row.delivery_id == "real" and len(row.body_hash) == 64


def test_an_order_replayed_as_orders_cancelled_is_rejected_without_events(
    client, app, runtime, work
):
    body = fixture_bytes("shopify", "orders__create")
    post_shopify(client, "orders/create", body, SHOPIFY_SECRET)
    work()
    assert replay(client, "orders/cancelled", body, DEMO_SHOP).status_code == 200
    work()

    created, cancelled = rows(runtime.engine, deliveries)
    assert created.status == "processed"
    assert cancelled.status == "rejected" and "cancelled_at" in cancelled.error
    assert [e.kind for e in rows(runtime.engine, events)] == ["order.created"]


@pytest.mark.parametrize(
    ("topic", "fixture", "change", "reason"),
    [
        ("refunds/create", "refunds__create", lambda b: b.pop("order_id"), "order_id"),
        ("orders/fulfilled", "orders__create", lambda b: None, "fulfillment_status"),
        ("shop/redact", "customers__redact", lambda b: None, "another topic"),
        (
            "shop/redact",
            "shop__redact",
            lambda b: b.update(shop_domain="victim-1.myshopify.com"),
            "another shop",
        ),
    ],
)
def test_a_body_not_shaped_like_its_topic_is_rejected(
    client, app, runtime, work, topic, fixture, change, reason
):
    body = load_fixture("shopify", fixture)
    change(body)
    assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
    work()
    (row,) = rows(runtime.engine, deliveries)
    assert row.status == "rejected" and reason in row.error
    assert count(runtime.engine, events) == 0


@pytest.mark.parametrize("topic", COMPLIANCE)
def test_privacy_topics_from_an_unknown_shop_are_answered_and_dropped(client, app, runtime, topic):
    body = load_fixture("shopify", topic.replace("/", "__"))
    for key in ("shop_domain", "myshopify_domain", "domain"):
        if key in body:
            body[key] = OTHERS[0]
    response = replay(client, topic, json.dumps(body).encode(), OTHERS[0])
    assert response.status_code == 200 and response.json["status"] == "ignored"
    drain(app)
    assert count(runtime.engine, deliveries) == 0
    assert count(runtime.engine, shops, shops.c.domain == OTHERS[0]) == 0


def _uninstall(app, runtime, *, clear_credentials: bool):
    with runtime.engine.begin() as conn:
        values = {"status": "uninstalled"}
        if clear_credentials:
            values["credentials"] = None
        conn.execute(shops.update().where(shops.c.domain == DEMO_SHOP).values(**values))
    # done by another process: this one sees it when its cached row expires
    app.extensions["aftersale.receiver"].forget_shops()


@pytest.mark.parametrize("clear_credentials", [True, False])
def test_an_uninstalled_shops_later_webhooks_are_answered_and_ignored(
    client, app, runtime, work, clear_credentials
):
    """Issue 18: after app/uninstalled, later webhooks get 200 and are recorded as ignored
    (Shopify may still deliver for a while); the privacy topics are stored and acted on."""
    order = fixture_bytes("shopify", "orders__create")
    assert post_shopify(client, "orders/create", order, SHOPIFY_SECRET).status_code == 200
    work()
    _uninstall(app, runtime, clear_credentials=clear_credentials)

    later = replay(client, "orders/paid", fixture_bytes("shopify", "orders__paid"), DEMO_SHOP)
    redact = replay(client, "shop/redact", fixture_bytes("shopify", "shop__redact"), DEMO_SHOP)
    assert (later.status_code, redact.status_code) == (200, 200)
    drain(app)
    stored = rows(runtime.engine, deliveries)
    assert [r.topic for r in stored] == ["orders/create", "orders/paid", "shop/redact"]
    events_before = count(runtime.engine, events)
    with runtime.engine.begin() as conn:  # process only the orders/paid delivery
        conn.execute(
            deliveries.update()
            .where(deliveries.c.topic == "shop/redact")
            .values(status="processed")
        )
    work()
    paid = rows(runtime.engine, deliveries, deliveries.c.topic == "orders/paid")[0]
    assert paid.status == "ignored"
    assert count(runtime.engine, events) == events_before


def test_a_shop_row_without_credentials_is_not_installed(client, app, runtime):
    with runtime.engine.begin() as conn:
        shop_store.ensure_shop(conn, "shopify", OTHERS[0], runtime.clock.now())
    body = fixture_bytes("shopify", "orders__create")
    assert replay(client, "orders/create", body, OTHERS[0]).status_code == 401
    drain(app)
    assert count(runtime.engine, deliveries) == 0


def test_a_shop_installed_a_moment_ago_is_accepted_at_once(client, app, runtime):
    with runtime.engine.begin() as conn:
        shop_store.ensure_shop(conn, "shopify", OTHERS[0], runtime.clock.now())
    body = fixture_bytes("shopify", "orders__create")
    assert replay(client, "orders/create", body, OTHERS[0]).status_code == 401  # now cached
    with runtime.engine.begin() as conn:
        shop_id = shop_store.find_shop(conn, "shopify", OTHERS[0]).id
        shop_store.save_credentials(
            conn,
            shop_id,
            runtime.config.secret_keys,
            {"access_token": "shpat_x"},
            runtime.clock.now(),
        )
    assert replay(client, "orders/create", body, OTHERS[0]).status_code == 200


def test_installing_again_changes_nothing(runtime, app):
    first = install_shop(runtime)
    assert install_shop(runtime) == first
    assert count(runtime.engine, shops) == 1
