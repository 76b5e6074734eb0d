"""WooCommerce on real services: signed deliveries, pings, dedupe, state diffs, registration.

The fixtures tell one store's story (tests/fixtures/woocommerce/SOURCES.md);
bodies are posted byte for byte as WooCommerce sends them, signed with the
webhook secret Aftersale generated for the shop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.wrappers import Response

from aftersale.connectors.base import DeliveryMeta, OrderState, ShopAccess
from aftersale.connectors.woocommerce import WooCommerceConnector, shop_domain
from aftersale.connectors.woocommerce.api import WEBHOOK_TOPICS
from aftersale.core.http import make_session
from aftersale.shops import accept_keys, add_woocommerce, authorize_url
from aftersale.store import shops as shop_store
from aftersale.store.tables import actions, deliveries, events
from tests.helpers import FIXTURES, count, rows
from tests.test_cli import env_for

SECRET = "whsec-test-woo"
STORE = "https://shop.example.com"
DOMAIN = "shop.example.com"
STORY = [
    "customer.created",
    "order.created__pending",
    "order.updated__processing",
    "order.created__processing",
    "product.updated",
    "order.updated__cancelled",
    "order.updated__completed_with_tracking",
    "order.updated__completed_custom_carrier",
    "order.updated__note_only",
    "order.updated__partially_refunded",
    "order.updated__refunded",
    "order.updated__coalesced",
    "order.deleted",
    "order.restored",
]


def body_of(name: str) -> bytes:
    return (FIXTURES / "woocommerce" / f"{name}.json").read_bytes()


def headers_of(name: str, body: bytes, secret: str = SECRET) -> dict:
    headers = json.loads((FIXTURES / "woocommerce" / f"{name}.headers.json").read_text())
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    headers["X-WC-Webhook-Signature"] = signature.decode()
    return headers


def post(client, name: str, *, body: bytes | None = None, path="/webhooks/woocommerce", **extra):
    body = body if body is not None else body_of(name)
    headers = {**headers_of(name, body), **extra}
    return client.post(path, data=body, headers=headers)


@pytest.fixture
def woo_shop(runtime, clock):
    clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))  # the story's deliveries are past
    shop_id, domain = add_woocommerce(runtime, STORE, "ck_test", "cs_test")
    with runtime.engine.begin() as conn:
        shop_store.update_credentials(
            conn,
            shop_id,
            runtime.config.secret_keys,
            {"webhook_secret": SECRET},
            runtime.clock.now(),
        )
    return shop_id


# -- the connector alone: the story's transitions ----------------------------------


def normalize_story(names):
    connector = WooCommerceConnector()
    states, produced = {}, {}
    for name in names:
        body = body_of(name)
        meta = connector.read_meta(headers_of(name, body))
        meta = DeliveryMeta(
            **{**meta.__dict__, "received_at": datetime(2026, 11, 29, 10, 5, tzinfo=UTC)}
        )
        payload = json.loads(body)
        ref = connector.order_ref(meta.topic, payload)
        result = connector.normalize(meta, payload, states.get(ref, OrderState()))
        if result.state is not None and ref:
            states[ref] = result.state
        produced[name] = (result.outcome, [(e.kind, e.key) for e in result.events], result.events)
    return produced


def test_the_story_turns_into_exactly_these_events():
    kinds = {name: [k for k, _ in found[1]] for name, found in normalize_story(STORY).items()}
    assert kinds == {
        "customer.created": ["customer.created"],
        "order.created__pending": ["order.created"],
        "order.updated__processing": ["order.paid"],
        "order.created__processing": ["order.created", "order.paid"],
        "product.updated": ["product.updated"],
        "order.updated__cancelled": ["order.cancelled"],
        "order.updated__completed_with_tracking": ["fulfillment.created", "order.fulfilled"],
        "order.updated__completed_custom_carrier": ["fulfillment.created"],
        "order.updated__note_only": [],
        "order.updated__partially_refunded": ["order.refunded"],
        "order.updated__refunded": ["order.refunded"],
        "order.updated__coalesced": [
            "order.created",
            "order.paid",
            "fulfillment.created",
            "order.fulfilled",
        ],
        "order.deleted": ["order.deleted"],
        "order.restored": ["order.restored"],
    }


def test_refunds_carry_positive_amounts_and_say_when_the_order_is_fully_refunded():
    produced = normalize_story(STORY[:11])
    (partial,) = produced["order.updated__partially_refunded"][2]
    (full,) = produced["order.updated__refunded"][2]
    assert (partial.refund["id"], partial.refund["amount"], partial.refund["currency"]) == (
        "4836",
        "5.00",
        "EUR",
    )
    assert (
        partial.refund["full"] is False and partial.refund["note"] == "Espresso cup arrived chipped"
    )
    assert (full.refund["id"], full.refund["amount"], full.refund["full"]) == (
        "4841",
        "57.88",
        True,
    )
    assert full.order["financial_status"] == "refunded"


def test_tracking_items_become_fulfillments_with_carrier_and_link():
    produced = normalize_story(STORY[:8])
    dhl = produced["order.updated__completed_with_tracking"][2][0].fulfillment
    assert dhl["tracking_company"] == "DHL"
    assert dhl["tracking_number"] == "00340434161094027318"
    assert dhl["tracking_url"].endswith("tracking-id=00340434161094027318")  # built from the slug
    gls = produced["order.updated__completed_custom_carrier"][2][0].fulfillment
    assert gls["tracking_company"] == "GLS Austria"
    assert gls["tracking_url"] == "https://gls-group.com/AT/de/paketverfolgung?match=41230987654"
    assert [i["sku"] for i in gls["line_items"]] == ["DRIP-02-SAND", None]


def test_orders_match_the_shopify_shape_so_one_rule_file_serves_both():
    from aftersale.connectors.shopify import canonical_order as shopify_order
    from tests.helpers import load_fixture

    shopify = shopify_order(load_fixture("shopify", "orders__create"))
    (event,) = normalize_story(["order.created__pending"])["order.created__pending"][2]
    assert set(shopify) <= set(event.order)
    assert set(shopify["line_items"][0]) == set(event.order["line_items"][0])
    assert event.order["total_price"] == "62.88" and event.order["currency"] == "EUR"
    assert event.order["created_at"] == "2026-11-20T09:15:03Z"  # date_created_gmt, UTC
    assert event.customer == {
        "id": "37",
        "email": "milica.jovanovic@example.com",
        "phone": "+43 660 1234567",
        "first_name": "Milica",
        "last_name": "Jovanović",
    }


def test_an_older_delivery_after_a_newer_one_is_stale_and_emits_nothing():
    produced = normalize_story(
        ["order.created__pending", "order.updated__partially_refunded", "order.updated__processing"]
    )
    outcome, found, _ = produced["order.updated__processing"]
    assert (outcome, found) == ("stale", [])
    # the newer delivery already told everything, once
    kinds = [k for k, _ in produced["order.updated__partially_refunded"][1]]
    assert kinds == ["order.paid", "fulfillment.created", "order.fulfilled", "order.refunded"]


def test_store_addresses_become_shop_domains():
    assert shop_domain("https://Shop.Example.com/") == "shop.example.com"
    assert shop_domain("http://example.com/shop/") == "example.com/shop"
    assert shop_domain("shop.example.com") == "shop.example.com"
    assert shop_domain("https://example.com:8443/") == "example.com:8443"
    assert shop_domain("") is None


# -- the receiver ------------------------------------------------------------------


def test_a_ping_gets_exactly_200_and_nothing_is_stored(client, runtime):
    body = (FIXTURES / "woocommerce" / "ping.txt").read_bytes()
    headers = json.loads((FIXTURES / "woocommerce" / "ping.headers.json").read_text())
    response = client.post("/webhooks/woocommerce", data=body, headers=headers)
    assert response.status_code == 200
    response = client.post(f"/webhooks/woocommerce/{DOMAIN}", data=body, headers=headers)
    assert response.status_code == 200
    assert count(runtime.engine, deliveries) == 0


def test_anything_else_unsigned_is_refused(client, runtime, woo_shop):
    body = body_of("order.created__pending")
    headers = headers_of("order.created__pending", body)
    del headers["X-WC-Webhook-Signature"]
    assert client.post("/webhooks/woocommerce", data=body, headers=headers).status_code == 401
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert (
        client.post("/webhooks/woocommerce", data=b"webhook_id=x", headers=form).status_code == 401
    )
    wrong = headers_of("order.created__pending", body, secret="not-the-secret")
    assert client.post("/webhooks/woocommerce", data=body, headers=wrong).status_code == 401
    assert count(runtime.engine, deliveries) == 0


def test_a_shop_that_is_not_connected_is_refused(client, runtime):
    assert post(client, "order.created__pending").status_code == 401
    assert count(runtime.engine, deliveries) == 0


def test_the_shop_comes_from_the_url_when_given(client, runtime, woo_shop):
    response = post(
        client,
        "order.created__pending",
        path=f"/webhooks/woocommerce/{DOMAIN}",
        **{"X-WC-Webhook-Source": "https://www.elsewhere.example/"},
    )
    assert response.status_code == 200
    (row,) = rows(runtime.engine, deliveries)
    assert row.shop_id == woo_shop


def test_two_orders_with_one_delivery_id_are_both_kept_and_a_repeat_is_not(
    client, runtime, woo_shop
):
    same_second = "477485cf5a36e0ef34b454f4911b17ca"
    first = post(client, "order.updated__processing", **{"X-WC-Webhook-Delivery-ID": same_second})
    second = post(client, "order.updated__cancelled", **{"X-WC-Webhook-Delivery-ID": same_second})
    repeat = post(client, "order.updated__cancelled", **{"X-WC-Webhook-Delivery-ID": same_second})
    assert [r.json["status"] for r in (first, second, repeat)] == ["stored", "stored", "duplicate"]
    assert count(runtime.engine, deliveries) == 2


def test_a_topic_without_events_is_still_answered_200_and_recorded(client, runtime, woo_shop, work):
    body = b'{"id":77,"code":"autumn10","amount":"10.00"}'
    headers = {
        **headers_of("customer.created", body),
        "X-WC-Webhook-Topic": "coupon.created",
        "X-WC-Webhook-Resource": "coupon",
        "X-WC-Webhook-Event": "created",
    }
    assert client.post("/webhooks/woocommerce", data=body, headers=headers).status_code == 200
    work()
    (row,) = rows(runtime.engine, deliveries)
    assert row.status == "ignored"
    assert count(runtime.engine, events) == 0


# -- end to end: the starter rules send the same mails as for Shopify ---------------


def subjects(smtp_server) -> list[str]:
    return [m["Subject"] for m in smtp_server.handler.messages]


def test_an_order_from_paid_to_refunded_sends_thanks_shipping_and_two_refund_mails(
    client, runtime, woo_shop, work, smtp_server
):
    for name in [
        "order.created__pending",
        "order.updated__processing",
        "order.updated__completed_with_tracking",
        "order.updated__partially_refunded",
        "order.updated__refunded",
    ]:
        assert post(client, name).status_code == 200
        work()

    # The store replaced the DHL tracking by a GLS one before the partial refund (see
    # SOURCES.md); the customer is told the new tracking number too.
    assert subjects(smtp_server) == [
        "Thank you for your order #4821",
        "Your order #4821 is on its way",
        "Your order #4821 is on its way",
        "Your refund for order #4821",
        "Your refund for order #4821",
    ]
    assert {m["To"] for m in smtp_server.handler.messages} == {"milica.jovanovic@example.com"}
    shipping = smtp_server.handler.messages[1].get_body(("plain",)).get_content()
    assert "00340434161094027318" in shipping and "dhl.com" in shipping
    corrected = smtp_server.handler.messages[2].get_body(("plain",)).get_content()
    assert "41230987654" in corrected and "GLS Austria" in corrected
    refunds = [m.get_body(("plain",)).get_content() for m in smtp_server.handler.messages[3:]]
    assert "5.00" in refunds[0] or "5,00" in refunds[0]
    assert "57.88" in refunds[1] or "57,88" in refunds[1]
    assert {a.status for a in rows(runtime.engine, actions)} == {"sent"}


def test_a_coalesced_update_sends_each_mail_once_even_when_delivered_twice_by_two_hooks(
    client, runtime, woo_shop, work, smtp_server, clock
):
    clock.set(datetime(2026, 11, 28, 16, 45, 34, tzinfo=UTC))  # when WooCommerce sent it
    post(client, "order.updated__coalesced")
    # the same state through the order.created webhook (another webhook id): no new events
    post(
        client,
        "order.updated__coalesced",
        **{"X-WC-Webhook-ID": "12", "X-WC-Webhook-Topic": "order.created"},
    )
    work()
    assert subjects(smtp_server) == [
        "Thank you for your order #4823",
        "Your order #4823 is on its way",
    ]
    kinds = sorted(e.kind for e in rows(runtime.engine, events))
    assert kinds == ["fulfillment.created", "order.created", "order.fulfilled", "order.paid"]


def test_updates_out_of_order_make_no_phantom_mails(client, runtime, woo_shop, work, smtp_server):
    for name in ["order.created__pending", "order.updated__partially_refunded"]:
        post(client, name)
    work()
    before = subjects(smtp_server)
    post(client, "order.updated__processing")  # older than what is stored
    post(client, "order.updated__completed_with_tracking")  # older too
    work()
    assert subjects(smtp_server) == before
    stale = [d for d in rows(runtime.engine, deliveries) if d.status == "stale"]
    assert len(stale) == 2


# -- connecting a store: REST API key, webhooks, key exchange ------------------------


class StoreStandIn:
    """The store's REST API: webhooks kept in memory, every call recorded."""

    def __init__(self, httpserver):
        self.hooks: list[dict] = []
        self.calls: list[tuple[str, str]] = []
        self.fail_with: tuple[int, dict] | None = None
        httpserver.expect_request("/wp-json/wc/v3/webhooks").respond_with_handler(self.webhooks)
        httpserver.expect_request("/wp-json/wc/v3/webhooks/", method="PUT").respond_with_handler(
            self.webhooks
        )

    def webhooks(self, request):
        self.calls.append((request.method, request.path))
        assert request.authorization.username == "ck_test"
        if self.fail_with:
            status, body = self.fail_with
            return Response(json.dumps(body), status=status, content_type="application/json")
        if request.method == "GET":
            page = int(request.args.get("page", 1))
            chunk = self.hooks[(page - 1) * 100 : page * 100]
            return Response(json.dumps(chunk), content_type="application/json")
        body = request.get_json()
        hook = {"id": len(self.hooks) + 100, "status": "active", **body}
        self.hooks.append(hook)
        return Response(json.dumps(hook), status=201, content_type="application/json")


@pytest.fixture
def store_api(httpserver, runtime):
    stand_in = StoreStandIn(httpserver)

    def update(request):
        hook_id = int(request.path.rsplit("/", 1)[1])
        stand_in.calls.append((request.method, request.path))
        hook = next(h for h in stand_in.hooks if h["id"] == hook_id)
        hook.update(request.get_json())
        return Response(json.dumps(hook), content_type="application/json")

    for hook_id in range(100, 120):
        httpserver.expect_request(
            f"/wp-json/wc/v3/webhooks/{hook_id}", method="PUT"
        ).respond_with_handler(update)
    return stand_in


def test_registering_creates_each_webhook_once_and_reactivates_disabled_ones(
    runtime, cli_runner, httpserver, store_api
):
    from aftersale.cli import build

    url = httpserver.url_for("/").rstrip("/")
    cli, env = build(), cli_env(runtime)
    result = cli_runner.invoke(
        cli,
        ["shops", "add-woocommerce", "--url", url, "--key", "ck_test", "--secret", "cs_test"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert sorted(h["topic"] for h in store_api.hooks) == sorted(WEBHOOK_TOPICS)
    domain = shop_domain(url)
    delivery = f"{runtime.config.public_url}/webhooks/woocommerce/{domain}"
    assert {h["delivery_url"] for h in store_api.hooks} == {delivery}
    secrets = {h["secret"] for h in store_api.hooks}
    assert len(secrets) == 1 and len(secrets.pop()) >= 32

    store_api.hooks[1]["status"] = "disabled"  # WooCommerce gave up after 7 failures
    result = cli_runner.invoke(cli, ["webhooks", "register", "--shop", domain], env=env)
    assert result.exit_code == 0, result.output
    assert len(store_api.hooks) == len(WEBHOOK_TOPICS)  # nothing created twice
    assert {h["status"] for h in store_api.hooks} == {"active"}
    done = [line.split()[1] for line in result.output.splitlines() if "(webhook" in line]
    assert sorted(done) == ["reactivated"] + ["unchanged"] * (len(WEBHOOK_TOPICS) - 1)


def test_an_error_from_the_store_is_a_clear_message(runtime, cli_runner, httpserver, store_api):
    from aftersale.cli import build

    url = httpserver.url_for("/").rstrip("/")
    add_woocommerce(runtime, url, "ck_test", "cs_test")
    store_api.fail_with = (
        401,
        {
            "code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot list resources.",
            "data": {"status": 401},
        },
    )
    result = cli_runner.invoke(
        build(), ["webhooks", "register", "--shop", shop_domain(url)], env=cli_env(runtime)
    )
    assert result.exit_code != 0
    assert "HTTP 401: Sorry, you cannot list resources. (woocommerce_rest_cannot_view)" in (
        result.output
    )


def test_the_key_exchange_stores_the_posted_key_only_with_our_token(runtime, client):
    link = authorize_url(runtime, STORE)
    parts = urlsplit(link)
    assert parts.path == "/wc-auth/v1/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["scope"] == "read_write" and query["app_name"] == "Aftersale"
    assert query["callback_url"].endswith("/woocommerce/auth-callback")
    posted = {
        "key_id": 1,
        "user_id": query["user_id"],
        "consumer_key": "ck_from_exchange",
        "consumer_secret": "cs_from_exchange",
        "key_permissions": "read_write",
    }
    forged = {**posted, "user_id": "1"}
    assert client.post("/woocommerce/auth-callback", json=forged).status_code == 400
    response = client.post("/woocommerce/auth-callback", json=posted)
    assert response.status_code == 200 and response.data == b""
    with runtime.engine.connect() as conn:
        shop = shop_store.find_shop(conn, "woocommerce", DOMAIN)
    credentials = shop_store.credentials_of(shop, runtime.config.secret_keys)
    assert credentials["consumer_key"] == "ck_from_exchange"
    assert b"ck_from_exchange" not in bytes(shop.credentials)  # encrypted at rest
    assert client.get("/woocommerce/connected?success=1&user_id=x").status_code == 200
    with pytest.raises(Exception, match="invalid or expired"):
        accept_keys(runtime, forged)


def test_order_notes_and_coupons_through_the_rest_api(httpserver):
    notes = []
    coupons = {}

    def order_notes(request):
        if request.method == "GET":
            return Response(json.dumps(notes), content_type="application/json")
        notes.append({"id": len(notes) + 1, "note": request.get_json()["note"]})
        return Response(json.dumps(notes[-1]), status=201, content_type="application/json")

    def coupon(request):
        if request.method == "GET":
            found = [c for c in coupons.values() if c["code"] == request.args["code"]]
            return Response(json.dumps(found), content_type="application/json")
        body = request.get_json()
        if body["code"] in {c["code"] for c in coupons.values()}:
            error = {
                "code": "woocommerce_rest_coupon_code_already_exists",
                "message": "The coupon code already exists",
                "data": {"status": 400},
            }
            return Response(json.dumps(error), status=400, content_type="application/json")
        coupons[len(coupons) + 1] = {"id": len(coupons) + 1, **body}
        return Response(
            json.dumps(coupons[len(coupons)]), status=201, content_type="application/json"
        )

    httpserver.expect_request("/wp-json/wc/v3/orders/4821/notes").respond_with_handler(order_notes)
    httpserver.expect_request("/wp-json/wc/v3/coupons").respond_with_handler(coupon)
    access = ShopAccess(
        domain=DOMAIN,
        credentials={"consumer_key": "ck_test", "consumer_secret": "cs_test"},
        api_url=httpserver.url_for("/").rstrip("/"),
    )
    connector = WooCommerceConnector()
    session = make_session()  # handed in, as a worker hands in its per-thread one
    note = "Review invite sent"
    assert connector.add_order_note(access, "4821", note, session=session)["id"] == 1
    again = connector.add_order_note(access, "4821", note, session=session)
    assert again["note"] == "already present"
    spec = {
        "code": "THANKS-7KQ2M9XD",
        "kind": "percentage",
        "value": "10",
        "customer_email": "milica.jovanovic@example.com",
        "expires_at": "2026-12-31T23:00:00Z",
    }
    created = connector.create_discount_code(access, spec, session=session)
    again = connector.create_discount_code(access, spec, session=session)  # after a crash
    assert created == {"id": 1, "code": "THANKS-7KQ2M9XD"}
    assert again["existing"] is True and len(coupons) == 1
    assert coupons[1]["discount_type"] == "percent" and coupons[1]["usage_limit"] == 1
    assert coupons[1]["email_restrictions"] == ["milica.jovanovic@example.com"]
    assert coupons[1]["date_expires_gmt"] == "2026-12-31T23:00:00"
    session.close()


def cli_env(runtime) -> dict:
    """The CLI on the test's database and Redis, with the test's SECRET_KEY (credentials)."""
    return {**env_for(runtime.config), "SECRET_KEY": runtime.config.secret_key}
