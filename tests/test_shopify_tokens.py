"""Expiring Shopify tokens, against a stand-in for Shopify's token endpoint and GraphQL Admin
API: renewed a few minutes before expiry with the rotated refresh token stored, renewed and
retried once after a 401, and a refused renewal failing the action for good with the link
that installs the app again. Each through a real RQ worker running a ``tag_order`` action,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from werkzeug import Response

from aftersale.connectors.shopify.api import API_VERSION
from aftersale.store import shops as shop_store
from aftersale.store.tables import actions, shops
from aftersale.workers import shop_access
from aftersale.workers.runner import make_worker
from tests.action_helpers import SHOP, configure_shop, hand_off, plant, store_event
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import rows

CLIENT_ID = "test-client-id"
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"
#: what Shopify answers a request with an expired or revoked token
UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}
REFUSED = {"error": "invalid_grant", "error_description": "refresh token is invalid or expired"}


class Shopify:
    """The token endpoint (refresh and client credentials grants) and ``tagsAdd``.

    ``valid`` is the one access token GraphQL accepts; any other is answered 401.
    A refresh must present the current refresh token, and rotates it.
    """

    def __init__(self, httpserver):
        self.valid = "shpat_0"
        self.refresh_token = "shprt_0"
        self.refuse = False
        self.issued = 0
        self.token_requests: list[dict] = []
        self.graphql_tokens: list[str] = []
        httpserver.expect_request("/admin/oauth/access_token", method="POST").respond_with_handler(
            self.token
        )
        httpserver.expect_request(GRAPHQL, method="POST").respond_with_handler(self.graphql)

    def token(self, request):
        form = request.form.to_dict()
        self.token_requests.append(form)
        ok = form.get("client_id") == CLIENT_ID and form.get("client_secret") == SHOPIFY_SECRET
        if self.refuse or not ok or form.get("refresh_token") != self.refresh_token:
            return Response(json.dumps(REFUSED), status=400, content_type="application/json")
        self.issued += 1
        self.valid, self.refresh_token = f"shpat_{self.issued}", f"shprt_{self.issued}"
        answer = {
            "access_token": self.valid,
            "expires_in": 3600,
            "refresh_token": self.refresh_token,
            "refresh_token_expires_in": 7776000,
            "scope": "write_orders,read_customers",
        }
        return Response(json.dumps(answer), content_type="application/json")

    def graphql(self, request):
        token = request.headers.get("X-Shopify-Access-Token")
        self.graphql_tokens.append(token)
        if token != self.valid:
            return Response(json.dumps(UNAUTHORIZED), status=401, content_type="application/json")
        variables = request.get_json()["variables"]
        answer = {"data": {"tagsAdd": {"node": {"id": variables["id"]}, "userErrors": []}}}
        return Response(json.dumps(answer), content_type="application/json")


@pytest.fixture
def config(config):
    return config.replace(shopify_api_key=CLIENT_ID)


@pytest.fixture
def shopify(httpserver):
    return Shopify(httpserver)


def installed(runtime, httpserver, expires_in: timedelta) -> tuple:
    """An order event of a shop installed with an expiring token (shpat_0 / shprt_0)."""
    shop_id, event_id, event = store_event(runtime)
    expires_at = runtime.clock.now() + expires_in
    credentials = {
        "access_token": "shpat_0",
        "refresh_token": "shprt_0",
        "expires_at": expires_at.isoformat(),
        "scope": "write_orders,read_customers",
    }
    configure_shop(
        runtime, shop_id, credentials=credentials, api_url=httpserver.url_for("/").rstrip("/")
    )
    return shop_id, event_id, event


def tag(runtime, shop) -> list:
    """Plant a tag_order action and let a real worker run it; the action rows."""
    hand_off(runtime, plant(runtime, *shop, [("tag_order", {"tags": ["vip"]})]))
    make_worker(runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)
    return rows(runtime.engine, actions)


def stored(runtime, shop_id: int) -> tuple[dict, object]:
    with runtime.engine.connect() as conn:
        row = shop_store.get_shop(conn, shop_id)
    return shop_store.credentials_of(row, runtime.config.secret_keys), row


def test_a_token_expiring_within_minutes_is_renewed_first(runtime, httpserver, shopify):
    shop = installed(runtime, httpserver, timedelta(minutes=3))
    (action,) = tag(runtime, shop)
    assert action.status == "sent", action.last_error
    # one refresh, with the stored refresh token, before the only GraphQL call
    assert shopify.token_requests == [
        {
            "client_id": CLIENT_ID,
            "client_secret": SHOPIFY_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": "shprt_0",
        }
    ]
    assert shopify.graphql_tokens == ["shpat_1"]
    credentials, row = stored(runtime, shop[0])
    assert credentials["access_token"] == "shpat_1"
    assert credentials["refresh_token"] == "shprt_1"  # the rotated one replaced the used one
    expires_at = datetime.fromisoformat(credentials["expires_at"])
    assert expires_at == runtime.clock.now() + timedelta(seconds=3600)
    assert b"shprt_1" not in bytes(row.credentials)  # encrypted at rest
    assert row.access_error is None


def test_a_token_far_from_expiry_is_used_as_it_is(runtime, httpserver, shopify):
    shop = installed(runtime, httpserver, timedelta(minutes=50))
    (action,) = tag(runtime, shop)
    assert action.status == "sent", action.last_error
    assert shopify.token_requests == []
    assert shopify.graphql_tokens == ["shpat_0"]


def test_a_401_renews_the_token_and_retries_once(runtime, httpserver, shopify):
    shop = installed(runtime, httpserver, timedelta(minutes=50))
    shopify.valid = "revoked-early"  # Shopify no longer takes shpat_0, though it is not due
    (action,) = tag(runtime, shop)
    assert action.status == "sent", action.last_error
    assert [r["grant_type"] for r in shopify.token_requests] == ["refresh_token"]
    assert shopify.graphql_tokens == ["shpat_0", "shpat_1"]
    credentials, _ = stored(runtime, shop[0])
    assert (credentials["access_token"], credentials["refresh_token"]) == ("shpat_1", "shprt_1")


def test_a_refused_renewal_fails_for_good_and_says_to_install_again(
    runtime, httpserver, shopify, cli_runner
):
    shop = installed(runtime, httpserver, timedelta(minutes=1))
    shopify.refuse = True
    (action,) = tag(runtime, shop)
    assert action.status == "failed"
    assert action.attempts == 1  # permanent: not retried into the same refusal
    assert "refused to renew the access token" in action.last_error
    assert f"{runtime.config.public_url}/shopify/install?shop={SHOP}" in action.last_error
    assert "invalid" in action.last_error  # Shopify's own reason
    assert shopify.graphql_tokens == []  # the expired token was never sent
    assert len(shopify.token_requests) == 1
    credentials, row = stored(runtime, shop[0])
    assert credentials["refresh_token"] == "shprt_0"  # nothing replaced
    assert "refresh token is invalid" in row.access_error
    with runtime.engine.connect() as conn:
        assert conn.execute(shops.select()).first().status == "active"


def test_a_401_without_a_way_to_renew_fails_with_shopifys_answer(runtime, httpserver, shopify):
    """A non-expiring token (an older install) has no refresh token: the 401 stands."""
    shop_id, event_id, event = store_event(runtime)
    configure_shop(
        runtime,
        shop_id,
        credentials={"access_token": "shpat_old", "scope": "write_orders"},
        api_url=httpserver.url_for("/").rstrip("/"),
    )
    (action,) = tag(runtime, (shop_id, event_id, event))
    assert action.status == "failed"
    assert "HTTP 401" in action.last_error
    assert shopify.token_requests == []
    assert shopify.graphql_tokens == ["shpat_old"]


def test_processes_renewing_at_once_ask_shopify_only_once(runtime, httpserver, shopify):
    """Shopify rotates the refresh token: a second refresh with the old one would be refused.
    Four threads find the token about to expire; one renews, the others use what it stored."""
    shop_id, _, _ = installed(runtime, httpserver, timedelta(minutes=2))
    _, row = stored(runtime, shop_id)
    tokens, errors = [], []

    def use():
        try:
            tokens.append(shop_access.current(runtime, row).credentials["access_token"])
        except Exception as exc:  # any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert tokens == ["shpat_1"] * 4
    assert len(shopify.token_requests) == 1
    assert stored(runtime, shop_id)[0]["refresh_token"] == "shprt_1"
