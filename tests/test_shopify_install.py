"""Installing Aftersale as a Shopify app, against a stand-in for Shopify's token endpoint and
GraphQL Admin API: the round trip, every refusal (nothing stored), idempotent and repairing
webhook registration, the scopes computed from rule files, and the app configuration."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from werkzeug import Response

from aftersale.cli import build
from aftersale.connectors.shopify.api import API_VERSION
from aftersale.connectors.shopify.oauth import query_hmac
from aftersale.rules.loader import load_rules
from aftersale.rules.scopes import shopify_needs
from aftersale.shopify_install import app_config_toml
from aftersale.store import shops as shop_store
from aftersale.store.tables import consumed_tokens, shops
from tests.conftest import OLD_SHOPIFY_SECRET, SHOPIFY_SECRET
from tests.helpers import count

#: not the demo shop the ``app`` fixture installs beforehand
SHOP = "fresh-install.myshopify.com"
CLIENT_ID = "test-client-id"
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"
ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "examples" / "starter"


class ShopifyStandIn:
    """The token endpoint and the webhook-subscription part of the GraphQL Admin API."""

    def __init__(self, httpserver):
        self.token_requests: list[dict] = []
        self.calls: list[tuple[str, dict]] = []
        self.subscriptions: dict[str, dict] = {}
        self.queued: list[dict] = []
        self.issued = 0
        httpserver.expect_request("/admin/oauth/access_token", method="POST").respond_with_handler(
            self.token
        )
        httpserver.expect_request(GRAPHQL, method="POST").respond_with_handler(self.graphql)

    def token(self, request):
        self.token_requests.append(request.form.to_dict())
        self.issued += 1
        answer = {
            "access_token": f"shpat_{self.issued}",
            "scope": "read_orders,read_fulfillments,read_returns,read_customers",
            "expires_in": 3600,
            "refresh_token": f"shprt_{self.issued}",
            "refresh_token_expires_in": 7776000,
        }
        return Response(json.dumps(answer), content_type="application/json")

    def add(self, topic: str, uri: str) -> str:
        sub_id = f"gid://shopify/WebhookSubscription/{len(self.subscriptions) + 100}"
        self.subscriptions[sub_id] = {"id": sub_id, "topic": topic, "uri": uri}
        return sub_id

    def graphql(self, request):
        assert request.headers["X-Shopify-Access-Token"] == f"shpat_{self.issued}"
        body = request.get_json()
        name = body["query"].split("(")[0].split()[-1]
        variables = body["variables"]
        self.calls.append((name, variables))
        answer = self.queued.pop(0) if self.queued else self.answer(name, variables)
        return Response(json.dumps(answer), content_type="application/json")

    def answer(self, name: str, variables: dict) -> dict:
        ok = {"userErrors": []}
        if name == "webhookSubscriptions":
            page = {"hasNextPage": False, "endCursor": None}
            nodes = list(self.subscriptions.values())
            return {"data": {"webhookSubscriptions": {"nodes": nodes, "pageInfo": page}}}
        if name == "webhookSubscriptionCreate":
            sub_id = self.add(variables["topic"], variables["webhookSubscription"]["uri"])
            created = {"webhookSubscription": self.subscriptions[sub_id], **ok}
            return {"data": {"webhookSubscriptionCreate": created}}
        if name == "webhookSubscriptionUpdate":
            sub = self.subscriptions[variables["id"]]
            sub["uri"] = variables["webhookSubscription"]["uri"]
            return {"data": {"webhookSubscriptionUpdate": {"webhookSubscription": sub, **ok}}}
        if name == "webhookSubscriptionDelete":
            del self.subscriptions[variables["id"]]
            deleted = {"deletedWebhookSubscriptionId": variables["id"], **ok}
            return {"data": {"webhookSubscriptionDelete": deleted}}
        raise AssertionError(f"unexpected operation {name}")

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def config(config, httpserver):
    """The shared test config with a client id and Shopify's admin pointed at the stand-in."""
    return config.replace(
        shopify_api_key=CLIENT_ID, shopify_admin_url=httpserver.url_for("/").rstrip("/")
    )


@pytest.fixture
def shopify(httpserver):
    return ShopifyStandIn(httpserver)


def start(client, shop: str = SHOP) -> dict:
    """GET the install link; the authorize URL's query (one value per key)."""
    response = client.get(f"/shopify/install?shop={shop}")
    assert response.status_code == 302, response.text
    url = urlsplit(response.headers["Location"])
    assert (url.scheme, url.netloc, url.path) == ("https", shop.lower(), "/admin/oauth/authorize")
    return {k: v[0] for k, v in parse_qs(url.query).items()}


def callback_params(clock, state: str, *, shop=SHOP, code="code-1", secret=SHOPIFY_SECRET, **over):
    params = {
        "code": code,
        "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvYWZ0ZXJzYWxlLWRlbW8",
        "shop": shop,
        "state": state,
        "timestamp": str(int(clock.now().timestamp())),
        **over,
    }
    params["hmac"] = query_hmac(params, secret)
    return params


def finish(client, params: dict):
    return client.get(f"/shopify/callback?{urlencode(params)}")


def install(client, clock, code="code-1"):
    state = start(client)["state"]
    response = finish(client, callback_params(clock, state, code=code))
    assert response.status_code == 200, response.text
    return response


def stored(runtime) -> dict:
    with runtime.engine.connect() as conn:
        row = shop_store.find_shop(conn, "shopify", SHOP)
    return {"row": row, "credentials": shop_store.credentials_of(row, runtime.config.secret_keys)}


# -- the round trip ---------------------------------------------------------------------


def test_install_round_trip(runtime, client, clock, shopify):
    authorize = start(client)
    needs = shopify_needs(runtime.rules, SHOP)
    assert authorize["client_id"] == CLIENT_ID
    assert authorize["scope"] == needs.scope_param
    assert authorize["redirect_uri"] == f"{runtime.config.public_url}/shopify/callback"

    response = finish(client, callback_params(clock, authorize["state"]))
    assert response.status_code == 200, response.text
    assert f"Aftersale is installed on {SHOP}" in response.text
    assert "orders/create: created" in response.text

    (exchange,) = shopify.token_requests
    assert exchange == {
        "client_id": CLIENT_ID,
        "client_secret": SHOPIFY_SECRET,
        "code": "code-1",
        "expiring": "1",
    }
    shop = stored(runtime)
    assert shop["row"].status == "active"
    creds = shop["credentials"]
    assert (creds["access_token"], creds["refresh_token"]) == ("shpat_1", "shprt_1")
    assert creds["expires_at"] == (clock.now() + timedelta(hours=1)).isoformat()
    assert b"shpat_1" not in shop["row"].credentials  # encrypted at rest

    uri = f"{runtime.config.public_url}/webhooks/shopify"
    subscribed = sorted((s["topic"], s["uri"]) for s in shopify.subscriptions.values())
    expected = sorted((t.replace("/", "_").upper(), uri) for t in needs.topics)
    assert subscribed == expected
    assert "CUSTOMERS_REDACT" not in {s["topic"] for s in shopify.subscriptions.values()}


def test_reinstall_refreshes_the_token_and_creates_nothing_new(runtime, client, clock, shopify):
    install(client, clock)
    before = dict(shopify.subscriptions)
    shopify.calls.clear()

    response = install(client, clock, code="code-2")
    assert shopify.subscriptions == before
    assert shopify.operations() == ["webhookSubscriptions"]
    assert "created" not in response.text
    assert stored(runtime)["credentials"]["access_token"] == "shpat_2"
    assert count(runtime.engine, shops, shops.c.domain == SHOP) == 1


def test_a_reinstall_clears_a_refused_token_and_records_the_install(
    runtime, client, clock, shopify
):
    install(client, clock)
    with runtime.engine.begin() as conn:
        conn.execute(shops.update().where(shops.c.domain == SHOP).values(access_error="refused"))
    clock.advance(timedelta(days=2))
    install(client, clock, code="code-2")
    row = stored(runtime)["row"]
    assert row.access_error is None
    assert row.installed_at == clock.now()
    assert row.webhooks_checked_at == clock.now() and row.webhooks_error is None


def test_registration_repairs_a_wrong_address_and_drops_what_no_rule_needs(
    runtime, client, clock, shopify
):
    install(client, clock)
    wrong_id = next(i for i, s in shopify.subscriptions.items() if s["topic"] == "ORDERS_CREATE")
    shopify.subscriptions[wrong_id]["uri"] = "https://old-host.example.com/webhooks/shopify"
    unneeded = shopify.add("PRODUCTS_UPDATE", f"{runtime.config.public_url}/webhooks/shopify")
    shopify.calls.clear()

    install(client, clock, code="code-2")
    uri = f"{runtime.config.public_url}/webhooks/shopify"
    assert shopify.subscriptions[wrong_id]["uri"] == uri
    assert unneeded not in shopify.subscriptions
    assert sorted(shopify.operations()) == [
        "webhookSubscriptionDelete",
        "webhookSubscriptionUpdate",
        "webhookSubscriptions",
    ]


def test_registration_waits_out_graphql_throttling(runtime, client, clock, shopify):
    throttled = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "throttleStatus": {"currentlyAvailable": 5, "restoreRate": 100.0},
            }
        },
    }
    shopify.queued.append(throttled)
    install(client, clock)
    assert shopify.operations()[:2] == ["webhookSubscriptions", "webhookSubscriptions"]
    assert len(shopify.subscriptions) == len(shopify_needs(runtime.rules, SHOP).topics)


def test_the_previous_secret_still_signs_during_a_rotation(runtime, client, clock, shopify):
    state = start(client)["state"]
    response = finish(client, callback_params(clock, state, secret=OLD_SHOPIFY_SECRET))
    assert response.status_code == 200, response.text


# -- refusals: a 400 page, and nothing stored ----------------------------------------------


def _tampered(client, clock, state):
    params = callback_params(clock, state)
    params["code"] = "code-from-elsewhere"  # after signing
    return params


def _wrong_state(client, clock, state):
    other = start(client, "another-shop.myshopify.com")["state"]
    return callback_params(clock, other)


def _forged_state(client, clock, state):
    return callback_params(clock, state[:-4] + "AAAA")


def _old(client, clock, state):
    return callback_params(clock, state, timestamp=str(int(clock.now().timestamp()) - 200))


def _foreign_domain(client, clock, state):
    return callback_params(clock, state, shop="aftersale-demo.example.com")


def _no_state(client, clock, state):
    params = callback_params(clock, state)
    del params["state"]
    params["hmac"] = query_hmac(params, SHOPIFY_SECRET)
    return params


@pytest.mark.parametrize(
    "make", [_tampered, _wrong_state, _forged_state, _old, _foreign_domain, _no_state]
)
def test_a_bad_callback_is_refused_and_stores_nothing(runtime, client, clock, shopify, make):
    state = start(client)["state"]
    response = finish(client, make(client, clock, state))
    assert response.status_code == 400
    assert "Nothing was changed" in response.text
    assert count(runtime.engine, shops, shops.c.domain == SHOP) == 0
    assert count(runtime.engine, consumed_tokens) == 0
    assert shopify.token_requests == [] and shopify.calls == []


def test_a_replayed_state_is_refused(runtime, client, clock, shopify):
    state = start(client)["state"]
    assert finish(client, callback_params(clock, state)).status_code == 200
    before = stored(runtime)["credentials"]
    shopify.calls.clear()

    response = finish(client, callback_params(clock, state, code="code-2"))
    assert response.status_code == 400
    assert "already used" in response.text
    assert len(shopify.token_requests) == 1 and shopify.calls == []
    assert stored(runtime)["credentials"] == before


def test_an_install_link_for_a_foreign_domain_is_refused(client, shopify):
    for shop in ("evil.example.com", "x.myshopify.com.evil.com", "-x.myshopify.com", ""):
        response = client.get(f"/shopify/install?shop={shop}")
        assert response.status_code == 400, shop
    assert start(client, SHOP.upper()) is not None


# -- scopes from rule files -------------------------------------------------------------------


def _rules(tmp_path, text: str):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(textwrap.dedent(text))
    return load_rules(folder)


def test_starter_pack_scopes():
    needs = shopify_needs(load_rules(STARTER))
    # thank-you and refunds: orders; shipping and review: fulfillments; the review invite is
    # cancelled by return.requested (returns) and is marketing mail (consent: customers)
    assert needs.scopes == ("read_customers", "read_fulfillments", "read_orders", "read_returns")
    assert {"orders/create", "refunds/create", "fulfillments/create", "returns/request"} <= set(
        needs.topics
    )
    assert {"orders/updated", "app/uninstalled"} <= set(needs.topics)
    assert not {"customers/redact", "customers/data_request", "shop/redact"} & set(needs.topics)


def test_platform_steps_and_events_add_their_scopes(tmp_path):
    ruleset = _rules(
        tmp_path,
        """
        - name: returns-tag
          on: return.requested
          category: transactional
          do:
            - tag_order: returned
            - discount_code: {value: 10, type: percentage, expires_in: 30d}
        - name: new-product
          on: product.created
          category: transactional
          shops: [other-shop.myshopify.com]
          do:
            - webhook: {url: "https://hooks.example.com/x"}
        - name: welcome
          on: customer.created
          category: transactional
          enabled: false
          do:
            - tag_customer: welcomed
        """,
    )
    needs = shopify_needs(ruleset)
    assert needs.scopes == (
        "read_orders",
        "read_products",
        "read_returns",
        "write_discounts",
        "write_orders",
    )
    assert "products/create" in needs.topics and "customers/create" not in needs.topics
    # a rule limited to another shop asks nothing of this one
    mine = shopify_needs(ruleset, SHOP)
    assert "read_products" not in mine.scopes and "products/create" not in mine.topics
    assert mine.scopes == ("read_orders", "read_returns", "write_discounts", "write_orders")


def test_events_waited_for_count_too(tmp_path):
    ruleset = _rules(
        tmp_path,
        """
        - name: after-delivery
          on: order.paid
          wait_for: {event: shipment.delivered, timeout: 14d}
          category: transactional
          do:
            - note_order: delivered or timed out
        """,
    )
    needs = shopify_needs(ruleset)
    assert needs.scopes == ("read_fulfillments", "read_orders", "write_orders")
    assert {"orders/paid", "fulfillment_events/create", "fulfillments/update"} <= set(needs.topics)


# -- the app configuration ------------------------------------------------------------------------


def test_app_config_command_prints_the_toml(cli_runner, tmp_path):
    env = {
        "INSTANCE_PATH": str(tmp_path),
        "PUBLIC_URL": "https://after.example.com/",
        "SHOPIFY_API_KEY": "abc123",
    }
    result = cli_runner.invoke(build(), ["shopify", "app-config"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert 'client_id = "abc123"' in out
    assert 'application_url = "https://after.example.com/shopify/install"' in out
    assert 'redirect_urls = ["https://after.example.com/shopify/callback"]' in out
    assert f'api_version = "{API_VERSION}"' in out
    assert (
        'compliance_topics = ["customers/data_request", "customers/redact", "shop/redact"]' in out
    )
    assert 'uri = "https://after.example.com/webhooks/shopify"' in out


def test_the_repository_toml_is_the_starter_packs():
    needs = shopify_needs(load_rules(STARTER))
    expected = app_config_toml("https://aftersale.example.com", "YOUR_CLIENT_ID", needs.scopes)
    assert (ROOT / "shopify.app.toml").read_text() == expected
