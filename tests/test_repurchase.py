"""Rules that use what the orders taught: ``wait: {until: repurchase_due}`` with its fallback
and its cancellation by a new order of the product, the customer's catalog facts, and
``recommendations.count``, end to end through webhooks on an injected clock.
"""

from __future__ import annotations

import copy
import textwrap
from datetime import timedelta

import pytest

from aftersale.core.events import iso, parse_time
from aftersale.rules import RulesInvalid
from aftersale.rules.loader import load_rules
from aftersale.store import catalog
from aftersale.store.tables import actions
from aftersale.workers.recommend_model import refresh_shop
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import install_shop, load_fixture, post_shopify, rows
from tests.test_woocommerce import store_api  # noqa: F401  (fixture)

ORDER = load_fixture("shopify", "orders__create")
ORDER_AT = parse_time(ORDER["created_at"])
KIT, SOCKS = "8061536829755", "8061536862523"
RULES = """
- name: replenish
  on: order.created
  if: {order.line_items.product_id: {in: ["8061536829755"]}}
  wait: {until: repurchase_due, before: 5d, fallback: 30d}
  once_per: order
  category: transactional
  do: [{email: {template: replenishment}}]

- name: shoe-care-regular
  on: order.created
  if:
    - customer.product_types: {contains: Shoe care}
    - customer.lifetime_orders: {gte: 2}
    - not: {customer.product_types: {contains: Bags}}
  category: transactional
  do: [{tag_order: [shoe-care-regular]}]

- name: bought-care-before
  on: order.created
  if: {customer.has_purchased: {product_type: Shoe care}}
  category: transactional
  do: [{tag_order: [care-buyer]}]

- name: cross-sell
  on: order.created
  if: {recommendations.count: {gte: 1}}
  category: transactional
  do: [{tag_order: [has-suggestions]}]
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    return folder


def body(order_id: int, products=(KIT,), customer: int = 7012345678901) -> dict:
    order = copy.deepcopy(ORDER)
    order.update(id=order_id, name=f"#{order_id}")
    items = [i for i in order["line_items"] if str(i["product_id"]) in products]
    order["line_items"] = items
    order["customer"]["id"] = customer
    return order


def place(client, work, clock, at, order: dict):
    clock.set(at)
    order["created_at"] = at.isoformat()
    assert post_shopify(client, "orders/create", order, SHOPIFY_SECRET).status_code == 200
    work()


def kit_history(runtime, shop_id, every_days: int, customers: int = 3):
    """Customers who bought the kit again every ``every_days``, learned into cycles."""
    with runtime.engine.begin() as conn:
        catalog.save_products(
            conn,
            shop_id,
            [{"id": KIT, "title": "Kit", "product_type": "Shoe care", "price": "1990.00"}],
            runtime.clock.now(),
        )
        for c in range(customers):
            for n in range(2):
                at = ORDER_AT - timedelta(days=400 - n * every_days)
                order = {
                    "id": f"h{c}-{n}",
                    "created_at": iso(at),
                    "line_items": [{"product_id": KIT, "quantity": 1, "price": "1990.00"}],
                }
                catalog.record_order(conn, shop_id, "order.created", order, f"past-{c}")
    refresh_shop(runtime, shop_id)


def reminders(runtime):
    return {a.order_ref: a for a in rows(runtime.engine, actions) if a.rule == "replenish"}


def test_without_enough_observations_the_fallback_wait_applies(runtime, client, work, clock):
    shop_id = install_shop(runtime)
    kit_history(runtime, shop_id, every_days=60, customers=2)  # 2 < min_observations 3
    place(client, work, clock, ORDER_AT, body(9001))
    reminder = reminders(runtime)["9001"]
    assert reminder.due_at == ORDER_AT + timedelta(days=30)


def test_the_reminder_waits_for_the_learned_cycle_and_a_new_order_cancels_it(
    runtime, client, work, clock
):
    shop_id = install_shop(runtime)
    kit_history(runtime, shop_id, every_days=60)
    place(client, work, clock, ORDER_AT, body(9001))
    first = reminders(runtime)["9001"]
    assert first.due_at == ORDER_AT + timedelta(days=60 - 5)
    assert first.status == "scheduled"

    # socks only: not the product the reminder is about, it stays
    place(client, work, clock, ORDER_AT + timedelta(days=10), body(9002, products=(SOCKS,)))
    assert reminders(runtime)["9001"].status == "scheduled"

    # the kit again: the old reminder is pointless, the new order plans its own
    place(client, work, clock, ORDER_AT + timedelta(days=20), body(9003))
    after = reminders(runtime)
    assert after["9001"].status == "skipped" and after["9001"].skip_reason == "cancelled"
    assert after["9003"].status == "scheduled"
    assert after["9003"].due_at == ORDER_AT + timedelta(days=20 + 55)


def test_catalog_facts_and_recommendation_count_judge_rules(runtime, client, work, clock):
    shop_id = install_shop(runtime)
    kit_history(runtime, shop_id, every_days=60)
    with runtime.engine.begin() as conn:  # socks go with the kit in two past orders
        catalog.save_products(
            conn, shop_id, [{"id": SOCKS, "title": "Socks", "product_type": "Socks"}], clock.now()
        )
        for n in range(2):
            order = {
                "id": f"pair-{n}",
                "created_at": iso(ORDER_AT - timedelta(days=50)),
                "line_items": [{"product_id": KIT}, {"product_id": SOCKS}],
            }
            catalog.record_order(conn, shop_id, "order.created", order, f"pair-{n}")
    refresh_shop(runtime, shop_id)

    place(client, work, clock, ORDER_AT, body(9001))
    tagged = {a.rule for a in rows(runtime.engine, actions) if a.order_ref == "9001"}
    assert tagged == {"replenish", "cross-sell"}  # first order: no regular yet

    place(client, work, clock, ORDER_AT + timedelta(days=3), body(9002))
    tagged = {a.rule for a in rows(runtime.engine, actions) if a.order_ref == "9002"}
    assert "shoe-care-regular" in tagged

    # a customer who owns the socks already gets no suggestion: nothing else goes with it
    place(client, work, clock, ORDER_AT + timedelta(days=4), body(9005, products=(KIT, SOCKS)))
    tagged = {a.rule for a in rows(runtime.engine, actions) if a.order_ref == "9005"}
    assert "cross-sell" not in tagged


def test_has_purchased_knows_the_type_of_orders_placed_before_the_catalog(
    runtime, client, work, clock
):
    shop_id = install_shop(runtime)
    place(client, work, clock, ORDER_AT, body(9101))  # no catalog yet: no product type
    with runtime.engine.begin() as conn:
        catalog.save_products(
            conn, shop_id, [{"id": KIT, "title": "Kit", "product_type": "Shoe care"}], clock.now()
        )
    place(client, work, clock, ORDER_AT + timedelta(days=10), body(9102, products=(SOCKS,)))
    rules_of = {a.rule for a in rows(runtime.engine, actions) if a.order_ref == "9102"}
    assert "bought-care-before" in rules_of


def test_repurchase_wait_is_checked_at_load(tmp_path):
    def load(wait: str):
        (tmp_path / "r.yaml").write_text(
            textwrap.dedent(
                f"""
                - name: r
                  on: order.created
                  wait: {wait}
                  category: transactional
                  do: [{{tag_order: [x]}}]
                """
            )
        )
        return load_rules(tmp_path)

    rule = load("{until: repurchase_due, before: 5d, fallback: 30d}").rules[0]
    assert rule.wait == -timedelta(days=5) and rule.wait_fallback == timedelta(days=30)
    with pytest.raises(RulesInvalid) as missing:
        load("{until: repurchase_due, before: 5d}")
    assert "needs a fallback" in str(missing.value) and "r.yaml:" in str(missing.value)
    with pytest.raises(RulesInvalid) as odd:
        load("{until: repurchase_due, offset: 5d, fallback: 30d}")
    assert "takes before and fallback" in str(odd.value)


def test_rules_that_use_the_catalog_make_shopify_send_products(rules_dir):
    from pathlib import Path

    from aftersale.rules.scopes import shopify_needs

    needs = shopify_needs(load_rules(rules_dir))
    assert "read_products" in needs.scopes
    assert {"products/create", "products/update", "products/delete"} <= set(needs.topics)
    plain = Path(__file__).resolve().parent.parent / "examples" / "thank-you"
    assert "read_products" not in shopify_needs(load_rules(plain)).scopes


def test_woocommerce_gets_product_webhooks_for_rules_that_use_the_catalog(
    runtime, httpserver, store_api
):
    from aftersale.connectors.woocommerce import shop_domain
    from aftersale.connectors.woocommerce.api import CATALOG_TOPICS, WEBHOOK_TOPICS
    from aftersale.shops import add_woocommerce, register_woocommerce_webhooks

    url = httpserver.url_for("/").rstrip("/")
    add_woocommerce(runtime, url, "ck_test", "cs_test")
    done = register_woocommerce_webhooks(runtime, shop_domain(url))
    assert sorted(done) == sorted(WEBHOOK_TOPICS + CATALOG_TOPICS)
    assert {h["topic"] for h in store_api.hooks} >= set(CATALOG_TOPICS)
