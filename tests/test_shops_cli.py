"""``aftersale shops ...`` and ``aftersale webhooks ...`` on both platforms, against stand-ins
for Shopify (token endpoint, GraphQL webhook subscriptions) and a WooCommerce store's REST
API: the list and show of every shop, removal after confirmation, webhook listing and repair,
``shops add-shopify`` with the client credentials grant (and its renewal), and a shop whose
grant lacks the scopes the rules now need."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from structlog.testing import capture_logs
from werkzeug import Response

from aftersale.cli import Context, build
from aftersale.connectors.shopify.api import API_VERSION
from aftersale.connectors.woocommerce import shop_domain
from aftersale.connectors.woocommerce.api import WEBHOOK_TOPICS
from aftersale.rules.scopes import shopify_needs
from aftersale.shops import add_woocommerce
from aftersale.store import shops as shop_store
from aftersale.store.tables import deliveries, shops
from aftersale.workers.runner import check_start
from tests.helpers import count, shopify_headers

OWN_SHOP = "own-store.myshopify.com"
OWN_CLIENT_ID = "own-app-client-id"
OWN_SECRET = "own-app-client-secret"
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"


class Shopify:
    """The client credentials grant and the webhook-subscription part of GraphQL."""

    def __init__(self, httpserver):
        self.token_requests: list[dict] = []
        self.subscriptions: dict[str, dict] = {}
        self.valid = None
        self.scope = ""
        httpserver.expect_request("/admin/oauth/access_token", method="POST").respond_with_handler(
            self.token
        )
        httpserver.expect_request(GRAPHQL, method="POST").respond_with_handler(self.graphql)

    def token(self, request):
        form = request.form.to_dict()
        self.token_requests.append(form)
        if form != {
            "client_id": OWN_CLIENT_ID,
            "client_secret": OWN_SECRET,
            "grant_type": "client_credentials",
        }:
            refused = {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
            return Response(json.dumps(refused), status=401, content_type="application/json")
        self.valid = f"shpat_cc_{len(self.token_requests)}"
        answer = {"access_token": self.valid, "scope": self.scope, "expires_in": 86399}
        return Response(json.dumps(answer), content_type="application/json")

    def graphql(self, request):
        if request.headers.get("X-Shopify-Access-Token") != self.valid:
            error = {"errors": "[API] Invalid API key or access token"}
            return Response(json.dumps(error), status=401, content_type="application/json")
        body = request.get_json()
        name, variables = body["query"].split("(")[0].split()[-1], body["variables"]
        ok = {"userErrors": []}
        if name == "webhookSubscriptions":
            page = {"hasNextPage": False, "endCursor": None}
            data = {"nodes": list(self.subscriptions.values()), "pageInfo": page}
            answer = {"webhookSubscriptions": data}
        elif name == "webhookSubscriptionCreate":
            sub_id = f"gid://shopify/WebhookSubscription/{len(self.subscriptions) + 1}"
            sub = {"id": sub_id, "topic": variables["topic"]}
            sub["uri"] = variables["webhookSubscription"]["uri"]
            self.subscriptions[sub_id] = sub
            answer = {"webhookSubscriptionCreate": {"webhookSubscription": sub, **ok}}
        elif name == "webhookSubscriptionUpdate":
            sub = self.subscriptions[variables["id"]]
            sub["uri"] = variables["webhookSubscription"]["uri"]
            answer = {"webhookSubscriptionUpdate": {"webhookSubscription": sub, **ok}}
        elif name == "webhookSubscriptionDelete":
            del self.subscriptions[variables["id"]]
            deleted = {"deletedWebhookSubscriptionId": variables["id"], **ok}
            answer = {"webhookSubscriptionDelete": deleted}
        else:
            raise AssertionError(f"unexpected operation {name}")
        return Response(json.dumps({"data": answer}), content_type="application/json")


class Store:
    """A WooCommerce store's webhooks endpoint (listing, creating, deleting)."""

    def __init__(self, httpserver):
        self.hooks: list[dict] = []
        httpserver.expect_request("/wp-json/wc/v3/webhooks").respond_with_handler(self.webhooks)
        httpserver.expect_request(
            re.compile(r"/wp-json/wc/v3/webhooks/\d+"), method="DELETE"
        ).respond_with_handler(self.delete)

    def delete(self, request):
        """As WC_REST_Webhooks_V1_Controller::delete_item: 501 without force, the deleted
        webhook with it."""
        if request.args.get("force") not in ("true", "1"):
            refused = {"code": "woocommerce_rest_trash_not_supported", "data": {"status": 501}}
            return Response(json.dumps(refused), status=501, content_type="application/json")
        hook_id = int(request.path.rsplit("/", 1)[1])
        (hook,) = [h for h in self.hooks if h["id"] == hook_id]
        self.hooks.remove(hook)
        return Response(json.dumps(hook), content_type="application/json")

    def webhooks(self, request):
        if request.method == "GET":
            page = int(request.args.get("page", 1))
            chunk = self.hooks[(page - 1) * 100 : page * 100]
            return Response(json.dumps(chunk), content_type="application/json")
        hook = {"id": len(self.hooks) + 100, "status": "active", **request.get_json()}
        self.hooks.append(hook)
        return Response(json.dumps(hook), status=201, content_type="application/json")


#: rules that need order, fulfillment and customer access and write_orders (no templates,
#: so these tests do not depend on the starter pack's mail)
RULES = """\
- name: tag-new-orders
  on: order.created
  once_per: order
  category: transactional
  do:
    - tag_order: {tags: [aftersale]}
- name: tag-shipped
  on: fulfillment.created
  once_per: fulfillment
  category: transactional
  do:
    - tag_customer: {tags: [shipped]}
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    return folder


@pytest.fixture
def config(config, httpserver):
    return config.replace(
        shopify_api_key="public-app-id", shopify_admin_url=httpserver.url_for("/").rstrip("/")
    )


@pytest.fixture
def shopify(httpserver):
    return Shopify(httpserver)


@pytest.fixture
def aftersale(runtime, cli_runner):
    """Run ``aftersale ARGS`` on the test's runtime (its clock and the stand-ins)."""

    def invoke(*args, input=None):
        context = Context()
        context._config, context._runtime = runtime.config, runtime
        return cli_runner.invoke(build(), list(args), obj=context, input=input)

    return invoke


def add_own_store(aftersale, shopify, runtime):
    """``shops add-shopify`` for a store with every scope the rules need."""
    shopify.scope = ",".join(shopify_needs(runtime.rules).scopes)
    result = aftersale(
        "shops",
        "add-shopify",
        "--shop",
        OWN_SHOP,
        "--client-id",
        OWN_CLIENT_ID,
        "--client-secret",
        OWN_SECRET,
    )
    assert result.exit_code == 0, result.output
    return result


def own_shop(runtime):
    with runtime.engine.connect() as conn:
        return shop_store.find_shop(conn, "shopify", OWN_SHOP)


def table_row(output: str, domain: str) -> list[str]:
    line = next(line for line in output.splitlines() if domain in line)
    return [cell.strip() for cell in re.split(r"[│|]", line) if cell.strip()]


def test_add_shopify_uses_the_client_credentials_grant_and_subscribes(runtime, aftersale, shopify):
    result = add_own_store(aftersale, shopify, runtime)
    assert shopify.token_requests == [
        {
            "client_id": OWN_CLIENT_ID,
            "client_secret": OWN_SECRET,
            "grant_type": "client_credentials",
        }
    ]
    needs = shopify_needs(runtime.rules, OWN_SHOP)
    assert len(shopify.subscriptions) == len(needs.topics)
    uri = f"{runtime.config.public_url}/webhooks/shopify"
    assert {s["uri"] for s in shopify.subscriptions.values()} == {uri}
    assert f"shop {OWN_SHOP}: token stored" in result.output
    with runtime.engine.connect() as conn:
        row = shop_store.find_shop(conn, "shopify", OWN_SHOP)
    credentials = shop_store.credentials_of(row, runtime.config.secret_keys)
    assert credentials["access_token"] == "shpat_cc_1"
    assert credentials["client_secret"] == OWN_SECRET
    assert OWN_SECRET.encode() not in bytes(row.credentials)
    assert row.status == "active"
    assert row.installed_at == runtime.clock.now()
    assert row.webhooks_checked_at == runtime.clock.now() and row.webhooks_error is None


def test_add_shopify_refused_credentials_store_nothing(runtime, aftersale, shopify):
    result = aftersale(
        "shops", "add-shopify", "--shop", OWN_SHOP, "--client-id", "x", "--client-secret", "y"
    )
    assert result.exit_code == 1
    assert "Shopify did not give a token" in result.output
    assert "Client authentication failed" in result.output
    assert count(runtime.engine, shops) == 0
    bad = aftersale("shops", "add-shopify", "--shop", "evil.example.com", "--client-id", "x",
                    "--client-secret", "y")  # fmt: skip
    assert bad.exit_code == 1 and "NAME.myshopify.com" in bad.output


def test_a_client_credentials_token_is_requested_again_when_it_runs_out(
    runtime, aftersale, shopify, clock
):
    add_own_store(aftersale, shopify, runtime)
    clock.advance(timedelta(hours=24))
    result = aftersale("webhooks", "list", "--shop", OWN_SHOP)
    assert result.exit_code == 0, result.output
    assert [r["grant_type"] for r in shopify.token_requests] == ["client_credentials"] * 2
    assert "healthy" in result.output
    with runtime.engine.connect() as conn:
        row = shop_store.find_shop(conn, "shopify", OWN_SHOP)
    assert shop_store.credentials_of(row, runtime.config.secret_keys)["access_token"] == (
        "shpat_cc_2"
    )


def test_webhooks_of_an_own_store_app_are_verified_with_its_secret(
    runtime, aftersale, shopify, client
):
    add_own_store(aftersale, shopify, runtime)
    body = json.dumps({"id": 1, "email": "x@example.com"}).encode()
    signed = shopify_headers("customers/update", body, OWN_SECRET, shop=OWN_SHOP)
    assert client.post("/webhooks/shopify", data=body, headers=signed).status_code == 200
    forged = shopify_headers("customers/update", body, "someone-else", shop=OWN_SHOP)
    assert client.post("/webhooks/shopify", data=body, headers=forged).status_code == 401
    # the store's own secret is no key to any other shop
    other = shopify_headers(
        "customers/update", body, OWN_SECRET, shop="aftersale-demo.myshopify.com"
    )
    assert client.post("/webhooks/shopify", data=body, headers=other).status_code == 401


def test_list_and_show_every_shop_on_both_platforms(
    runtime, aftersale, shopify, httpserver, client, clock
):
    add_own_store(aftersale, shopify, runtime)
    url = httpserver.url_for("/").rstrip("/")
    add_woocommerce(runtime, url, "ck_test", "cs_test")
    woo = shop_domain(url)
    clock.advance(timedelta(minutes=5))
    body = json.dumps({"id": 7, "email": "x@example.com"}).encode()
    headers = shopify_headers("customers/update", body, OWN_SECRET, shop=OWN_SHOP)
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    assert count(runtime.engine, deliveries) == 1

    result = aftersale("shops", "list")
    assert result.exit_code == 0, result.output
    for column in ("platform", "domain", "status", "installed at", "webhooks", "last delivery"):
        assert column in result.output
    installed = (clock.now() - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    received = clock.now().strftime("%Y-%m-%d %H:%M:%S")
    assert table_row(result.output, OWN_SHOP) == [
        "shopify",
        OWN_SHOP,
        "active",
        installed,
        "healthy",
        received,
    ]
    assert table_row(result.output, woo) == [
        "woocommerce",
        woo,
        "active",
        installed,
        "unchecked",
        "-",
    ]

    shown = aftersale("shops", "show", OWN_SHOP)
    assert shown.exit_code == 0, shown.output
    assert f"shop:          {OWN_SHOP} (shopify, id " in shown.output
    assert f"last delivery: {received}" in shown.output
    assert OWN_SECRET not in shown.output and "shpat" not in shown.output
    missing = aftersale("shops", "show", "nobody.myshopify.com")
    assert missing.exit_code == 1 and "no shop 'nobody.myshopify.com'" in missing.output


def test_remove_asks_first_then_erases_every_row(runtime, aftersale, shopify, client):
    add_own_store(aftersale, shopify, runtime)
    body = json.dumps({"id": 7, "email": "x@example.com"}).encode()
    headers = shopify_headers("customers/update", body, OWN_SECRET, shop=OWN_SHOP)
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200

    kept = aftersale("shops", "remove", OWN_SHOP, input="n\n")
    assert kept.exit_code == 0, kept.output
    assert "cannot be undone" in kept.output and f"{OWN_SHOP}: kept" in kept.output
    assert own_shop(runtime) is not None

    ours = len(shopify.subscriptions)
    assert ours > 0 and len(kept.output.split("webhook(s) deleted")) == 1
    foreign = "gid://shopify/WebhookSubscription/900"  # another deployment's, left alone
    elsewhere = {"id": foreign, "topic": "ORDERS_CREATE", "uri": "https://other.example.com/w"}
    shopify.subscriptions[foreign] = elsewhere

    removed = aftersale("shops", "remove", OWN_SHOP, input="y\n")
    assert removed.exit_code == 0, removed.output
    assert f"{OWN_SHOP}: {ours} webhook(s) deleted on shopify" in removed.output
    assert list(shopify.subscriptions) == [foreign]
    assert f"{OWN_SHOP}: removed" in removed.output
    assert own_shop(runtime) is None
    assert count(runtime.engine, deliveries) == 0  # the only one was the removed shop's
    assert OWN_SHOP not in aftersale("shops", "list").output


def test_remove_with_yes_does_not_ask_and_deletes_the_store_webhooks(
    runtime, aftersale, httpserver
):
    store = Store(httpserver)
    url = httpserver.url_for("/").rstrip("/")
    _, domain = add_woocommerce(runtime, url, "ck_test", "cs_test")
    assert aftersale("webhooks", "register", "--shop", domain).exit_code == 0
    store.hooks.append({"id": 900, "topic": "order.created", "delivery_url": "https://x.test/"})

    result = aftersale("shops", "remove", domain, "--yes")
    assert result.exit_code == 0, result.output
    assert "cannot be undone" not in result.output
    assert f"{domain}: {len(WEBHOOK_TOPICS)} webhook(s) deleted on woocommerce" in result.output
    assert [h["id"] for h in store.hooks] == [900]  # the store's own webhook stays
    assert count(runtime.engine, shops) == 0


def test_remove_deletes_the_data_even_when_the_platform_cannot_be_reached(
    runtime, aftersale, httpserver
):
    """The store's key was revoked (401): the data goes, and the output says what to delete
    by hand. ``--keep-webhooks`` does not ask the platform at all."""
    httpserver.expect_request("/wp-json/wc/v3/webhooks").respond_with_json(
        {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources."},
        status=401,
    )
    url = httpserver.url_for("/").rstrip("/")
    _, domain = add_woocommerce(runtime, url, "ck_test", "cs_test")
    result = aftersale("shops", "remove", domain, "--yes")
    assert result.exit_code == 0, result.output
    assert f"{domain}: webhooks not deleted on woocommerce" in result.output
    assert "WooCommerce > Settings > Advanced > Webhooks" in result.output
    assert f"{domain}: removed" in result.output and count(runtime.engine, shops) == 0

    asked = len(httpserver.log)
    add_woocommerce(runtime, url, "ck_test", "cs_test")
    kept = aftersale("shops", "remove", domain, "--yes", "--keep-webhooks")
    assert kept.exit_code == 0 and "webhook" not in kept.output
    assert len(httpserver.log) == asked and count(runtime.engine, shops) == 0


def test_shopify_webhooks_list_finds_what_is_wrong_and_register_repairs_it(
    runtime, aftersale, shopify
):
    add_own_store(aftersale, shopify, runtime)
    moved = next(iter(shopify.subscriptions.values()))
    moved["uri"] = "https://old-host.example.com/webhooks/shopify"
    del shopify.subscriptions[list(shopify.subscriptions)[-1]]

    listed = aftersale("webhooks", "list", "--shop", OWN_SHOP)
    assert listed.exit_code == 0, listed.output
    assert "posts to https://old-host.example.com/webhooks/shopify" in listed.output
    assert "no subscription" in listed.output
    assert f"repair: aftersale webhooks register --shop {OWN_SHOP}" in listed.output
    assert table_row(aftersale("shops", "list").output, OWN_SHOP)[4].startswith("no: ")

    repaired = aftersale("webhooks", "register", "--shop", OWN_SHOP)
    assert repaired.exit_code == 0, repaired.output
    done = [line.split()[1] for line in repaired.output.splitlines() if "gid://" in line]
    assert sorted(set(done)) == ["created", "unchanged", "updated"]
    relisted = aftersale("webhooks", "list", "--shop", OWN_SHOP)
    assert "problem:" not in relisted.output and "healthy" in relisted.output
    assert table_row(aftersale("shops", "list").output, OWN_SHOP)[4] == "healthy"


def test_woocommerce_webhooks_list_and_register(runtime, aftersale, httpserver):
    store = Store(httpserver)
    url = httpserver.url_for("/").rstrip("/")
    _, domain = add_woocommerce(runtime, url, "ck_test", "cs_test")

    listed = aftersale("webhooks", "list", "--shop", domain)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("no webhook") == len(WEBHOOK_TOPICS)

    registered = aftersale("webhooks", "register", "--shop", domain)
    assert registered.exit_code == 0, registered.output
    assert sorted(h["topic"] for h in store.hooks) == sorted(WEBHOOK_TOPICS)
    store.hooks[0]["status"] = "disabled"  # WooCommerce gave up on it
    relisted = aftersale("webhooks", "list", "--shop", domain)
    assert f"problem: {store.hooks[0]['topic']}: disabled" in relisted.output
    assert "disabled" in table_row(aftersale("shops", "list").output, domain)[4]


def test_a_grant_missing_scopes_the_rules_need_asks_for_a_reinstall(runtime, aftersale, shopify):
    add_own_store(aftersale, shopify, runtime)
    with runtime.engine.begin() as conn:
        row = shop_store.find_shop(conn, "shopify", OWN_SHOP)
        shop_store.update_credentials(
            conn, row.id, runtime.config.secret_keys, {"scope": "read_orders"}, runtime.clock.now()
        )
    needed = shopify_needs(runtime.rules, OWN_SHOP).scopes
    assert "write_orders" in needed

    listed = aftersale("shops", "list")
    assert table_row(listed.output, OWN_SHOP)[2] == "needs reinstall"
    shown = aftersale("shops", "show", OWN_SHOP)
    assert "status:        needs reinstall" in shown.output
    lacking = sorted(set(needed) - {"read_orders"})
    assert f"why:           the rules need scopes {', '.join(lacking)}" in shown.output
    assert f"aftersale shops add-shopify --shop {OWN_SHOP}" in shown.output

    with capture_logs() as logs:
        check_start(runtime)  # what a worker does when it starts
    warnings = [e for e in logs if e["event"] == "shop.needs_reinstall"]
    assert len(warnings) == 1
    assert warnings[0]["shop"] == OWN_SHOP and warnings[0]["log_level"] == "warning"


def test_a_public_app_shop_is_sent_to_the_install_link(runtime, aftersale):
    """A shop installed through the install link whose grant lacks a scope: the link fixes it."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "linked.myshopify.com", now)
        credentials = {"access_token": "shpat_x", "refresh_token": "r", "scope": "read_orders"}
        shop_store.save_credentials(conn, shop_id, runtime.config.secret_keys, credentials, now)
    shown = aftersale("shops", "show", "linked.myshopify.com")
    link = f"{runtime.config.public_url}/shopify/install?shop=linked.myshopify.com"
    assert f"to fix:        install the app again: {link}" in shown.output
