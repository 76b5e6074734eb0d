"""POST /webhooks/shopify: verify, store, answer; nothing stored or enqueued for a bad request."""

from __future__ import annotations

import json

import pytest
from redis import Redis

from aftersale.store.tables import deliveries, shops
from tests.conftest import OLD_SHOPIFY_SECRET, SHOPIFY_SECRET
from tests.helpers import count, fixture_bytes, post_shopify, rows, shopify_headers

TOPIC = "orders/create"


@pytest.fixture
def body():
    return fixture_bytes("shopify", "orders__create")


def queued_jobs(runtime) -> int:
    return runtime.queue("deliveries").count


def assert_nothing_stored(runtime, app):
    app.extensions["aftersale.receiver"].writer.drain()
    assert count(runtime.engine, deliveries) == 0
    assert queued_jobs(runtime) == 0


def test_signed_delivery_is_stored_answered_200_and_relayed(client, app, runtime, body, scheduler):
    response = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="wh-1", event_id="ev-1")
    assert response.status_code == 200
    assert response.json["status"] == "stored"
    app.extensions["aftersale.receiver"].writer.drain()
    (row,) = rows(runtime.engine, deliveries)
    assert row.topic == TOPIC
    assert row.delivery_id == "wh-1" and row.event_id == "ev-1"
    assert row.dedupe_key == "webhook:wh-1"
    assert row.body == body  # the exact bytes, for replay
    assert row.status == "pending"
    assert "X-Shopify-Hmac-Sha256" not in row.headers
    assert row.headers["X-Shopify-Topic"] == TOPIC
    assert (
        runtime.redis.llen(f"{runtime.config.queue_prefix}:relay:nudge") == 1
    )  # the relay was woken
    assert scheduler.relay() == 1
    (row,) = rows(runtime.engine, deliveries)
    assert row.status == "queued" and row.job_id
    assert queued_jobs(runtime) == 1
    (shop,) = rows(runtime.engine, shops)
    assert shop.platform == "shopify" and shop.domain == "aftersale-demo.myshopify.com"


def test_previous_secret_is_accepted_during_rotation(client, runtime, body):
    assert post_shopify(client, TOPIC, body, OLD_SHOPIFY_SECRET).status_code == 200


def test_bad_signature_is_401_and_nothing_is_stored(client, app, runtime, body):
    headers = shopify_headers(TOPIC, body, "wrong-secret")
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 401
    assert_nothing_stored(runtime, app)


def test_body_changed_after_signing_is_401(client, app, runtime, body):
    headers = shopify_headers(TOPIC, body, SHOPIFY_SECRET)
    response = client.post("/webhooks/shopify", data=body.replace(b"4590", b"1"), headers=headers)
    assert response.status_code == 401
    assert_nothing_stored(runtime, app)


def test_missing_signature_is_401(client, app, runtime, body):
    headers = shopify_headers(TOPIC, body, SHOPIFY_SECRET)
    del headers["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 401
    assert_nothing_stored(runtime, app)


@pytest.mark.parametrize(
    "missing",
    ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-API-Version", "X-Shopify-Webhook-Id"],
)
def test_missing_headers_are_400(client, app, runtime, body, missing):
    headers = shopify_headers(TOPIC, body, SHOPIFY_SECRET)
    del headers[missing]
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert missing in response.json["reason"]
    assert_nothing_stored(runtime, app)


def test_a_shop_domain_that_is_not_myshopify_is_400(client, app, runtime, body):
    response = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, shop="evil.example.com")
    assert response.status_code == 400
    assert_nothing_stored(runtime, app)


def test_oversized_body_is_413(client, app, runtime):
    body = json.dumps({"id": 1, "note": "x" * (1024 * 1024)}).encode()
    response = post_shopify(client, TOPIC, body, SHOPIFY_SECRET)
    assert response.status_code == 413
    assert_nothing_stored(runtime, app)


@pytest.mark.parametrize("bad", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(client, app, runtime, bad):
    response = post_shopify(client, TOPIC, bad, SHOPIFY_SECRET)
    assert response.status_code == 400
    assert_nothing_stored(runtime, app)


def test_unknown_platform_is_404(client, body):
    assert client.post("/webhooks/magento", data=body).status_code == 404


def test_the_same_delivery_twice_is_stored_once(client, app, runtime, body, scheduler):
    first = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="same")
    second = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="same")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json["status"] == "duplicate"
    app.extensions["aftersale.receiver"].writer.drain()
    assert count(runtime.engine, deliveries) == 1
    assert scheduler.relay() == 1


def test_the_same_event_through_two_subscriptions_is_stored_once(client, app, runtime, body):
    post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="a", event_id="event-9")
    second = post_shopify(client, TOPIC, body, SHOPIFY_SECRET, webhook_id="b", event_id="event-9")
    assert second.status_code == 200 and second.json["status"] == "duplicate"
    app.extensions["aftersale.receiver"].writer.drain()
    assert count(runtime.engine, deliveries) == 1


def test_an_unknown_topic_is_accepted(client, app, runtime):
    response = post_shopify(client, "carts/update", {"id": "c1"}, SHOPIFY_SECRET)
    assert response.status_code == 200


def test_database_unavailable_is_503(tmp_path, redis_url, smtp_server, rules_dir, clock, body):
    from aftersale.core.config import Config
    from aftersale.runtime import Runtime
    from aftersale.web import create_app

    config = Config.from_env(
        {},
        instance_path=tmp_path,
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        redis_url=redis_url,
        shopify_api_secrets=(SHOPIFY_SECRET,),
        mail_url=smtp_server.url,
        rules_dir=rules_dir,
        secret_key="k",
    )
    runtime = Runtime(config, clock)
    app = create_app(runtime=runtime)
    response = post_shopify(app.test_client(), TOPIC, body, SHOPIFY_SECRET)
    assert response.status_code == 503
    assert Redis.from_url(redis_url).llen(f"rq:queue:{config.queue_name('deliveries')}") == 0
    runtime.close()


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok"}  # details only with READYZ_TOKEN: tests/test_readyz.py
