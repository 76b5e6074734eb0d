"""Reconciliation and backfill against local HTTP servers standing in for each platform's REST API.

A missed webhook is found by asking the platform and mailed exactly once; an
order that arrived both ways is mailed once; pagination survives a 429; a run
that crashes mid-way resumes from the stored cursor; a disabled WooCommerce
webhook is re-enabled; a backfill's dry run counts what the real one sends.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from aftersale.core.errors import TransientError
from aftersale.core.events import iso
from aftersale.store import shops as shop_store
from aftersale.store import syncs
from aftersale.store.tables import deliveries, events
from aftersale.workers.backfill import run_backfill
from aftersale.workers.reconcile import Walk, reconcile_shop
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import shopify_api_shop, woocommerce_api_shop
from tests.helpers import DEMO_SHOP, load_fixture, shopify_headers

ORDERS_PATH = "/admin/api/2025-10/orders.json"
WOO_DOMAIN = "shop.example.com"


def shopify_order(clock, order_id: int, *, minutes_ago: int = 60, email: str | None = None):
    order = copy.deepcopy(load_fixture("shopify", "orders__create"))
    created = clock.now() - timedelta(minutes=minutes_ago)
    order.update(
        id=order_id,
        name=f"#{order_id % 100000}",
        admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
        created_at=iso(created),
        updated_at=iso(created + timedelta(seconds=5)),
        processed_at=iso(created),
    )
    if email:
        order["email"] = order["contact_email"] = email
    return order


class ShopifyOrders:
    """``GET orders.json`` in pages linked by ``page_info``; optional failures by request number."""

    def __init__(self, httpserver, pages: list[list[dict]], failures: dict[int, int] | None = None):
        self.pages = pages
        self.failures = dict(failures or {})
        self.requests: list[dict] = []
        httpserver.expect_request(ORDERS_PATH).respond_with_handler(self)
        self.base = httpserver.url_for(ORDERS_PATH)

    def __call__(self, request):
        self.requests.append(dict(request.args))
        status = self.failures.pop(len(self.requests), None)
        if status is not None:
            return Response("slow down", status=status, headers={"Retry-After": "0"})
        assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
        info = request.args.get("page_info")
        index = int(info.removeprefix("p")) if info else 0
        if info:  # Shopify refuses filters beside page_info
            assert set(request.args) <= {"page_info", "limit"}
        headers = {}
        if index + 1 < len(self.pages):
            headers["Link"] = f'<{self.base}?limit=250&page_info=p{index + 1}>; rel="next"'
        return Response(
            json.dumps({"orders": self.pages[index]}),
            headers=headers,
            content_type="application/json",
        )


@pytest.fixture
def shopify_shop(runtime, httpserver):
    return shopify_api_shop(runtime, httpserver.url_for("/").rstrip("/"))


def mails_to(smtp_server, address: str) -> int:
    return sum(1 for m in smtp_server.handler.messages if address in str(m["To"]))


def no_sleep(_seconds):
    return None


def test_a_missed_order_is_found_and_mailed_once(
    runtime, clock, shopify_shop, httpserver, smtp_server, work
):
    order = shopify_order(clock, 7100000000001, email="missed@example.com")
    api = ShopifyOrders(httpserver, [[order]])
    summary = reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    work()
    assert summary.orders == 1 and summary.events >= 1 and summary.actions == 1
    assert mails_to(smtp_server, "missed@example.com") == 1
    first = api.requests[0]
    assert first["status"] == "any" and first["order"] == "updated_at asc"
    assert first["updated_at_min"] == iso(clock.now() - timedelta(days=2))
    with runtime.engine.connect() as conn:
        sync = syncs.get(conn, shopify_shop)
        sources = {row.source for row in conn.execute(select(deliveries.c.source))}
        via = {
            (row.payload.get("source") or {}).get("via")
            for row in conn.execute(select(events.c.payload))
        }
    assert sync.status == "ok" and sync.cursor == clock.now() - timedelta(minutes=60, seconds=-5)
    assert sources == {"reconcile"} and via == {"reconcile"}

    # the next run starts from the cursor (a little before it) and repeats nothing
    again = reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    work()
    assert again.deliveries == 0 and again.duplicates >= 1
    assert api.requests[1]["updated_at_min"] == iso(sync.cursor - timedelta(minutes=2))
    assert mails_to(smtp_server, "missed@example.com") == 1


def test_an_order_received_both_ways_is_mailed_once(
    runtime, clock, client, shopify_shop, httpserver, smtp_server, work, config
):
    order = shopify_order(clock, 7100000000002, email="both@example.com")
    body = json.dumps(order).encode()
    secret = config.shopify_api_secrets[0]
    response = client.post(
        "/webhooks/shopify", data=body, headers=shopify_headers("orders/create", body, secret)
    )
    assert response.status_code == 200
    work()
    assert mails_to(smtp_server, "both@example.com") == 1
    ShopifyOrders(httpserver, [[order]])
    summary = reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    work()
    # orders/create came as a webhook; orders/paid (a webhook of its own) did not: only
    # that is new, and no rule acts on it twice
    assert summary.orders == 1 and summary.events == 1 and summary.actions == 0
    assert mails_to(smtp_server, "both@example.com") == 1


def test_pages_and_a_429_in_the_middle(runtime, clock, shopify_shop, httpserver, smtp_server, work):
    pages = [
        [shopify_order(clock, 7100000000010 + i, minutes_ago=90 - i, email=f"p1-{i}@example.com")]
        for i in range(3)
    ]
    waits = []
    api = ShopifyOrders(httpserver, pages, failures={2: 429})
    summary = reconcile_shop(runtime, shopify_shop, Walk(sleep=waits.append))
    work()
    assert summary.pages == 3 and summary.orders == 3
    assert waits == [0.0]  # the Retry-After Shopify gave
    assert len(api.requests) == 4 and api.requests[2] == {"limit": "250", "page_info": "p1"}
    assert [mails_to(smtp_server, f"p1-{i}@example.com") for i in range(3)] == [1, 1, 1]


def test_a_crash_mid_run_resumes_from_the_cursor(
    runtime, clock, shopify_shop, httpserver, smtp_server, work
):
    first = shopify_order(clock, 7100000000020, minutes_ago=50, email="c1@example.com")
    second = shopify_order(clock, 7100000000021, minutes_ago=40, email="c2@example.com")
    ShopifyOrders(httpserver, [[first], [second]], failures={n: 503 for n in range(2, 8)})
    with pytest.raises(TransientError):
        reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    work()
    with runtime.engine.connect() as conn:
        sync = syncs.get(conn, shopify_shop)
    assert sync.status == "failed" and "503" in sync.summary["error"]
    assert sync.cursor == clock.now() - timedelta(minutes=50, seconds=-5)  # page 1 was done
    httpserver.clear()
    api = ShopifyOrders(httpserver, [[first, second]])
    summary = reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    work()
    assert api.requests[0]["updated_at_min"] == iso(sync.cursor - timedelta(minutes=2))
    # the second order's create and paid are new; the first order's paid was stored already
    assert (summary.deliveries, summary.duplicates, summary.actions) == (2, 1, 1)
    assert mails_to(smtp_server, "c1@example.com") == 1
    assert mails_to(smtp_server, "c2@example.com") == 1


def test_backfill_dry_run_counts_what_the_real_one_sends(
    runtime, clock, shopify_shop, httpserver, smtp_server, work
):
    recent = shopify_order(clock, 7100000000030, minutes_ago=20, email="recent@example.com")
    old = shopify_order(clock, 7100000000031, minutes_ago=60 * 24 * 20, email="old@example.com")
    old["updated_at"] = iso(clock.now() - timedelta(days=1))  # changed since the backfill date
    ShopifyOrders(httpserver, [[old, recent]])
    since = clock.now() - timedelta(days=30)
    dry = run_backfill(runtime, shopify_shop, since, dry_run=True)
    work()
    assert smtp_server.handler.messages == []
    with runtime.engine.connect() as conn:
        assert conn.execute(select(deliveries.c.id)).first() is None  # rolled back
    plan = dry.rules["thank-you"]
    assert (plan.planned, plan.late, plan.to_send) == (2, 1, 1)
    real = run_backfill(runtime, shopify_shop, since)
    work()
    assert real.rules["thank-you"].to_send == plan.to_send
    assert mails_to(smtp_server, "recent@example.com") == 1
    assert mails_to(smtp_server, "old@example.com") == 0  # a month-old order is not thanked now
    assert len(smtp_server.handler.messages) == plan.to_send


def test_history_only_plans_nothing_but_remembers(runtime, clock, shopify_shop, httpserver, work):
    order = shopify_order(clock, 7100000000040, minutes_ago=60 * 24 * 300)
    order["updated_at"] = iso(clock.now() - timedelta(days=300))
    ShopifyOrders(httpserver, [[order]])
    report = run_backfill(
        runtime, shopify_shop, clock.now() - timedelta(days=730), history_only=True
    )
    assert report.rules == {} and report.summary.orders == 1
    with runtime.engine.connect() as conn:
        kinds = {row.kind for row in conn.execute(select(events.c.kind))}
    assert "order.created" in kinds


def test_two_schedulers_enqueue_one_run_per_shop(runtime, clock, shopify_shop):
    first, second = Scheduler(runtime), Scheduler(runtime)
    assert first.tick(clock.now()).reconciles_enqueued == 1
    assert second.tick(clock.now()).reconciles_enqueued == 0
    later = clock.now() + timedelta(minutes=runtime.config.reconcile_minutes, seconds=31)
    assert second.tick(later).reconciles_enqueued == 1
    assert first.tick(later).reconciles_enqueued == 0


# -- WooCommerce --------------------------------------------------------------------------


def woo_order(clock, order_id: int, email: str):
    order = copy.deepcopy(load_fixture("woocommerce", "order.created__processing"))
    created = clock.now() - timedelta(minutes=30)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S")
    order.update(id=order_id, number=str(order_id), date_created_gmt=stamp)
    order.update(date_modified_gmt=stamp, date_paid_gmt=stamp)
    order["billing"]["email"] = email
    return order


@pytest.fixture
def woo_shop(runtime, httpserver):
    api_url = httpserver.url_for("/").rstrip("/")
    return woocommerce_api_shop(runtime, WOO_DOMAIN, api_url, webhook_secret="whsec")


def test_woocommerce_missed_order_and_disabled_webhook(
    runtime, clock, woo_shop, httpserver, smtp_server, work
):
    from aftersale.reconcile_jobs import repair_webhooks
    from aftersale.shops import delivery_url

    orders = [woo_order(clock, 9100 + i, f"woo{i}@example.com") for i in range(3)]
    seen = []

    def list_orders(request):
        seen.append(dict(request.args))
        page = int(request.args["page"])
        return Response(
            json.dumps(orders[(page - 1) * 2 : page * 2]),
            headers={"X-WP-TotalPages": "2", "X-WP-Total": "3"},
            content_type="application/json",
        )

    httpserver.expect_request("/wp-json/wc/v3/orders").respond_with_handler(list_orders)
    summary = reconcile_shop(runtime, woo_shop, Walk(sleep=no_sleep))
    work()
    assert summary.pages == 2 and summary.orders == 3
    assert seen[0]["modified_after"] and seen[0]["dates_are_gmt"] == "true"
    assert seen[0]["orderby"] == "modified" and seen[1]["page"] == "2"
    assert [mails_to(smtp_server, f"woo{i}@example.com") for i in range(3)] == [1, 1, 1]

    url = delivery_url(runtime, WOO_DOMAIN)
    hooks = [
        {"id": n, "topic": topic, "delivery_url": url, "status": "active"}
        for n, topic in enumerate(
            ["order.created", "order.updated", "order.deleted", "order.restored"], 1
        )
    ]
    hooks[1]["status"] = "disabled"  # the 7th failure in a row
    updates, created = [], []

    def webhooks(request):
        if request.method == "GET":
            return Response(json.dumps(hooks), content_type="application/json")
        created.append(request.get_json()["topic"])
        return Response(json.dumps({"id": 100 + len(created)}), content_type="application/json")

    def update_hook(request):
        updates.append((request.path, request.get_json()))
        return Response(json.dumps({"id": 2, "status": "active"}), content_type="application/json")

    httpserver.expect_request("/wp-json/wc/v3/webhooks").respond_with_handler(webhooks)
    httpserver.expect_request("/wp-json/wc/v3/webhooks/2").respond_with_handler(update_hook)
    with runtime.engine.connect() as conn:
        shop = shop_store.get_shop(conn, woo_shop)
    repaired = repair_webhooks(runtime, shop)
    assert updates == [("/wp-json/wc/v3/webhooks/2", {"status": "active", "secret": "whsec"})]
    assert "order.updated (reactivated)" in repaired
    assert set(created) == {"customer.created", "customer.updated"}


def test_backfill_command_prints_the_plan(
    runtime, clock, config, shopify_shop, httpserver, cli_runner
):
    from aftersale.cli import build
    from tests.test_cli import env_for

    ShopifyOrders(httpserver, [[shopify_order(clock, 7100000000050, minutes_ago=10)]])
    env = {**env_for(config), "SECRET_KEY": config.secret_key}
    since = (clock.now() - timedelta(days=7)).date().isoformat()
    result = cli_runner.invoke(
        build(), ["backfill", "--shop", DEMO_SHOP, "--since", since, "--dry-run"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "1 orders since" in result.output and "dry run, nothing stored" in result.output
    assert "thank-you" in result.output and "order 7100000000050" in result.output
    missing = cli_runner.invoke(build(), ["backfill", "--shop", DEMO_SHOP], env=env)
    assert missing.exit_code == 2 and "--since is required" in missing.output
    unknown = cli_runner.invoke(
        build(), ["backfill", "--shop", "nope.example", "--since", since], env=env
    )
    assert unknown.exit_code == 1 and "no shop 'nope.example'" in unknown.output


def test_status_shows_the_last_reconcile_run(runtime, clock, config, shopify_shop, httpserver):
    from aftersale.store import monitoring

    order = shopify_order(clock, 7100000000060, minutes_ago=10)
    ShopifyOrders(httpserver, [[order]])
    reconcile_shop(runtime, shopify_shop, Walk(sleep=no_sleep))
    with runtime.engine.begin() as conn:
        summary = syncs.get(conn, shopify_shop).summary
        syncs.finish(
            conn,
            shopify_shop,
            "ok",
            {**summary, "repaired": ["orders/create (created)"]},
            clock.now(),
        )
    with runtime.engine.connect() as conn:
        (status,) = [
            s for s in monitoring.shop_statuses(conn, clock.now()) if s.domain == DEMO_SHOP
        ]
    assert status.reconcile_status == "ok" and status.reconciled_at == clock.now()
    assert status.reconcile_summary["orders"] == 1
    assert status.last_webhook is None  # what reconciliation stored is not a webhook
    from aftersale.cli.status import _reconcile

    text = _reconcile(status)
    assert "1 orders" in text and "webhooks repaired: orders/create (created)" in text
