"""The product catalog: product webhooks, a paged sync against local stand-ins for each
platform's REST API (with a 429 on the way), line items completed from the catalog, and the
order lines the recommendation model counts.
"""

from __future__ import annotations

import copy
import json
from base64 import b64decode
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from aftersale.connectors.shopify.api import API_VERSION
from aftersale.store import shops as shop_store
from aftersale.store.tables import events, order_lines, products
from aftersale.workers.shop_catalog import sync_catalog
from tests.action_helpers import shopify_api_shop, woocommerce_api_shop
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import FIXTURES, install_shop, load_fixture, post_shopify, rows

PRODUCTS_PATH = f"/admin/api/{API_VERSION}/products.json"
WOO_DOMAIN = "shop.example.com"
CATALOG = FIXTURES / "shopify" / "catalog"


def shopify_product(product_id: int, title: str, **changes) -> dict:
    """The fixture product under another id and title (what Shopify lists and sends)."""
    product = json.loads((CATALOG / "products__update.json").read_text())
    product.update(id=product_id, title=title, handle=title.lower().replace(" ", "-"))
    for variant in product["variants"]:
        variant["product_id"] = product_id
    product.update(changes)
    return product


def no_sleep(_seconds):
    return None


@pytest.fixture
def shopify_shop(runtime, httpserver):
    return shopify_api_shop(runtime, httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def woo_shop(runtime, httpserver):
    api_url = httpserver.url_for("/").rstrip("/")
    return woocommerce_api_shop(runtime, WOO_DOMAIN, api_url)


def stored(runtime, shop_id) -> dict:
    return {r.product_ref: r for r in rows(runtime.engine, products, products.c.shop_id == shop_id)}


def test_shopify_sync_follows_page_info_and_waits_out_a_429(runtime, shopify_shop, httpserver):
    pages = [
        [shopify_product(1001, "Cream"), shopify_product(1002, "Brush")],
        [shopify_product(1003, "Cloth", status="draft", published_at=None)],
    ]
    seen = []

    def listing(request):
        seen.append(dict(request.args))
        if len(seen) == 2:
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
        info = request.args.get("page_info")
        index = 1 if info == "p1" else 0
        headers = {}
        if index == 0:
            link = httpserver.url_for(PRODUCTS_PATH) + "?limit=250&page_info=p1"
            headers["Link"] = f'<{link}>; rel="next"'
        return Response(
            json.dumps({"products": pages[index]}), headers=headers, content_type="application/json"
        )

    httpserver.expect_request(PRODUCTS_PATH).respond_with_handler(listing)
    summary = sync_catalog(runtime, shopify_shop, sleep=no_sleep)
    assert (summary.pages, summary.products, summary.written) == (2, 3, 3)
    assert seen[0] == {"limit": "250"} and seen[1] == seen[2] == {"limit": "250", "page_info": "p1"}
    catalog = stored(runtime, shopify_shop)
    assert sorted(catalog) == ["1001", "1002", "1003"]
    cream = catalog["1001"]
    assert (cream.title, cream.price, cream.product_type) == ("Cream", "1990.00", "Shoe care")
    assert cream.image_alt == "Shoe cream, horsehair brush and cloth in a tin box"
    assert cream.image_url.startswith("https://cdn.shopify.com/")
    assert cream.tags == ["care", "leather"] and cream.handle == "cream"
    assert cream.published and cream.in_stock
    assert not catalog["1003"].published

    again = sync_catalog(runtime, shopify_shop, sleep=no_sleep)  # idempotent
    assert again.products == 3 and len(stored(runtime, shopify_shop)) == 3


def test_woocommerce_sync_pages_by_total_pages(runtime, woo_shop, httpserver):
    base = load_fixture("woocommerce", "product.updated")
    records = []
    for n in range(3):
        record = copy.deepcopy(base)
        record.update(id=2000 + n, name=f"Cup {n}", price=f"1{n}.00")
        records.append(record)
    records[2]["stock_status"] = "outofstock"
    seen = []

    def listing(request):
        seen.append(dict(request.args))
        user, _, password = b64decode(request.headers["Authorization"][6:]).decode().partition(":")
        assert (user, password) == ("ck_test", "cs_test")
        if len(seen) == 1:
            return Response("busy", status=429, headers={"Retry-After": "0"})
        page = int(request.args["page"])
        return Response(
            json.dumps(records[(page - 1) * 2 : page * 2]),
            headers={"X-WP-TotalPages": "2", "X-WP-Total": "3"},
            content_type="application/json",
        )

    httpserver.expect_request("/wp-json/wc/v3/products").respond_with_handler(listing)
    summary = sync_catalog(runtime, woo_shop, sleep=no_sleep)
    assert (summary.pages, summary.products) == (2, 3)
    assert [s["page"] for s in seen] == ["1", "1", "2"] and seen[0]["per_page"] == "100"
    catalog = stored(runtime, woo_shop)
    cup = catalog["2000"]
    assert cup.url == "https://shop.example.com/product/hand-thrown-espresso-cup/"
    assert (cup.product_type, cup.categories) == ("Cups & Mugs", ["Cups & Mugs"])
    assert cup.image_alt == "Hand-thrown espresso cup in speckled white glaze"
    assert cup.price == "10.00" and cup.in_stock and not catalog["2002"].in_stock


def test_product_webhooks_keep_the_catalog(runtime, client, work):
    body = (CATALOG / "products__update.json").read_bytes()
    assert post_shopify(client, "products/update", body, SHOPIFY_SECRET).status_code == 200
    work()
    shop_id = install_shop(runtime)
    kit = stored(runtime, shop_id)["8061536829755"]
    assert (kit.title, kit.vendor, kit.in_stock) == (
        "Leather shoe care kit",
        "Aftersale Demo",
        True,
    )

    older = json.loads(body)  # a delayed delivery of an older version changes nothing
    older.update(title="Old title", updated_at="2026-10-01T10:00:00+01:00")
    post_shopify(client, "products/update", older, SHOPIFY_SECRET)
    sold_out = json.loads(body)
    sold_out["updated_at"] = "2026-11-22T09:00:00+01:00"
    sold_out["variants"][0]["inventory_quantity"] = 0
    post_shopify(client, "products/update", sold_out, SHOPIFY_SECRET)
    work()
    kit = stored(runtime, shop_id)["8061536829755"]
    assert kit.title == "Leather shoe care kit" and kit.in_stock is False

    deleted = (CATALOG / "products__delete.json").read_bytes()
    post_shopify(client, "products/delete", deleted, SHOPIFY_SECRET)
    work()
    assert stored(runtime, shop_id) == {}


def test_orders_get_type_tags_and_image_from_the_catalog(runtime, client, work):
    post_shopify(
        client, "products/update", (CATALOG / "products__update.json").read_bytes(), SHOPIFY_SECRET
    )
    work()
    order = load_fixture("shopify", "orders__create")
    assert post_shopify(client, "orders/create", order, SHOPIFY_SECRET).status_code == 200
    work()
    with runtime.engine.connect() as conn:
        payload = conn.execute(
            select(events.c.payload).where(events.c.kind == "order.created")
        ).scalar_one()
    kit, socks = payload["order"]["line_items"]
    assert kit["product_type"] == "Shoe care" and kit["tags"] == ["care", "leather"]
    assert kit["image_alt"] == "Shoe cream, horsehair brush and cloth in a tin box"
    assert "image_url" not in socks  # not in the catalog: left as the platform sent it

    lines = rows(runtime.engine, order_lines, order_by=order_lines.c.product_ref)
    assert [(r.order_ref, r.product_ref, r.customer_ref, r.quantity) for r in lines] == [
        ("5678901234567", "8061536829755", "7012345678901", 1),
        ("5678901234567", "8061536862523", "7012345678901", 2),
    ]
    cancelled = load_fixture("shopify", "orders__cancelled")
    post_shopify(client, "orders/cancelled", cancelled, SHOPIFY_SECRET)
    work()
    assert rows(runtime.engine, order_lines) == []  # a cancelled order is not a purchase


def test_logo_url_is_a_setting(tmp_path):
    from aftersale.rules import RulesInvalid
    from aftersale.rules.loader import load_rules

    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "settings.yaml").write_text(
        "logo_url: https://cdn.example.com/logo.png\nrecommend: {min_support: 3, refresh: 2h}\n"
    )
    settings = load_rules(folder).settings
    assert settings.logo_url == "https://cdn.example.com/logo.png"
    assert settings.recommend.min_support == 3
    (folder / "settings.yaml").write_text("logo_url: not a url\n")
    with pytest.raises(RulesInvalid) as caught:
        load_rules(folder)
    assert "logo_url" in str(caught.value)


def test_woocommerce_product_webhooks_keep_the_catalog(runtime, client, work, clock):
    from aftersale.shops import add_woocommerce
    from tests.test_woocommerce import SECRET, STORE, body_of, headers_of

    shop_id, _ = add_woocommerce(runtime, STORE, "ck_test", "cs_test")
    with runtime.engine.begin() as conn:
        shop_store.update_credentials(
            conn, shop_id, runtime.config.secret_keys, {"webhook_secret": SECRET}, clock.now()
        )
    body = body_of("product.updated")
    headers = headers_of("product.updated", body)
    assert client.post("/webhooks/woocommerce", data=body, headers=headers).status_code == 200
    work()
    cup = stored(runtime, shop_id)["1203"]
    assert (cup.title, cup.product_type, cup.price) == (
        "Hand-thrown Espresso Cup",
        "Cups & Mugs",
        "11.40",
    )
    assert cup.url == "https://shop.example.com/product/hand-thrown-espresso-cup/"

    # a deleted product's body is only its id (class-wc-webhook.php build_payload)
    gone = (FIXTURES / "woocommerce" / "catalog" / "product.deleted.json").read_bytes()
    headers = {
        **headers_of("product.updated", gone),
        "X-WC-Webhook-Topic": "product.deleted",
        "X-WC-Webhook-Event": "deleted",
        "X-WC-Webhook-Delivery-ID": "5b7d0e5c3a1f9e2d4c6b8a0f1e3d5c7b",
    }
    assert client.post("/webhooks/woocommerce", data=gone, headers=headers).status_code == 200
    work()
    assert stored(runtime, shop_id) == {}


def test_a_backfill_syncs_the_catalog_first_and_recounts_the_model(
    runtime, clock, shopify_shop, httpserver
):
    from aftersale.store.tables import product_stats
    from aftersale.workers.backfill import run_backfill
    from tests.test_reconcile import ShopifyOrders, shopify_order

    kit = json.loads((CATALOG / "products__update.json").read_text())
    httpserver.expect_request(PRODUCTS_PATH).respond_with_json({"products": [kit]})
    ShopifyOrders(httpserver, [[shopify_order(clock, 7100000000077, minutes_ago=90)]])
    since = clock.now() - timedelta(days=7)
    run_backfill(runtime, shopify_shop, since, history_only=True, catalog=True)

    assert sorted(stored(runtime, shopify_shop)) == ["8061536829755"]
    with runtime.engine.connect() as conn:
        payload = conn.execute(
            select(events.c.payload).where(events.c.kind == "order.created")
        ).scalar_one()
    # the catalog was there before the orders: their line items carry its product type
    assert payload["order"]["line_items"][0]["product_type"] == "Shoe care"
    counted = rows(runtime.engine, product_stats, order_by=product_stats.c.product_ref)
    assert [(r.product_ref, r.orders, r.product_type) for r in counted] == [
        ("8061536829755", 1, "Shoe care"),
        ("8061536862523", 1, None),
    ]
