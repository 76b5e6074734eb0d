"""Customer history facts in rules, from the orders Aftersale stored, end to end.

"First order only", "repurchase after 60 days", "bought this before" and
"spent over N" are written with ``customer.orders_count``,
``customer.last_order_at``, ``customer.has_purchased`` and ``customer.total_spent``.
"""

from __future__ import annotations

import copy
import json
import textwrap
from datetime import timedelta

import pytest

from aftersale.core.events import parse_time
from aftersale.rules import RulesInvalid
from aftersale.rules.loader import load_rules
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import load_fixture, post_shopify, rows

ORDER = load_fixture("shopify", "orders__create")
ORDER_AT = parse_time(ORDER["created_at"])
RULES = """
- name: first-order
  on: order.created
  if: {customer.orders_count: 1}
  category: transactional
  do: [{tag_order: [first-order]}]

- name: bought-the-kit-before
  on: order.created
  if: {customer.has_purchased: {sku: CARE-KIT-01}}
  category: transactional
  do: [{tag_order: [returning-kit-buyer]}]

- name: came-back-after-a-while
  on: order.created
  if: {customer.last_order_at: {older_than: 60d}}
  category: transactional
  do: [{tag_order: [win-back-worked]}]

- name: big-spender
  on: order.created
  if: {customer.total_spent: {gte: 9000}}
  category: transactional
  do: [{tag_order: [vip]}]
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    return folder


def order(order_id: int, sku: str = "CARE-KIT-01") -> bytes:
    body = copy.deepcopy(ORDER)
    body["id"] = order_id
    body["name"] = f"#{order_id}"
    body["line_items"][0]["sku"] = sku
    return json.dumps(body).encode()


def place(client, work, clock, at, order_id, **kwargs):
    clock.set(at)
    response = post_shopify(client, "orders/create", order(order_id, **kwargs), SHOPIFY_SECRET)
    assert response.status_code == 200
    work()


def rules_for(runtime, order_id: int) -> set[str]:
    return {a.rule for a in rows(runtime.engine, actions) if a.order_ref == str(order_id)}


def test_history_facts_come_from_the_customers_stored_orders(client, work, runtime, clock):
    place(client, work, clock, ORDER_AT, 1001)
    assert rules_for(runtime, 1001) == {"first-order"}  # nothing bought before

    place(client, work, clock, ORDER_AT + timedelta(days=10), 1002, sku="SOCKS-1")
    # second order: the kit was bought before; only 10 days since; 2 x 4590 spent
    assert rules_for(runtime, 1002) == {"bought-the-kit-before", "big-spender"}

    place(client, work, clock, ORDER_AT + timedelta(days=100), 1003, sku="SOCKS-1")
    assert rules_for(runtime, 1003) == {
        "bought-the-kit-before",
        "came-back-after-a-while",
        "big-spender",
    }


def test_has_purchased_with_a_time_window_and_what_rules_test_explains(tmp_path):
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent(
            """
            - name: bought-long-ago
              on: order.created
              if: {customer.has_purchased: {product_type: [Baby], older_than: 52w}}
              category: marketing
              do: [{tag_order: [baby-years-ago]}]
            """
        )
    )
    ruleset = load_rules(tmp_path)
    assert ruleset.needs_history
    from datetime import UTC, datetime

    from aftersale.core.events import Event
    from aftersale.rules.engine import explain, plan

    now = datetime(2026, 11, 24, tzinfo=UTC)

    def event(at):
        customer = {"id": "c1", "purchases": [{"product_type": "Baby", "at": at}]}
        return Event(
            kind="order.created",
            shop="s",
            key="9",
            occurred_at=now,
            order={"id": "9"},
            customer=customer,
        )

    assert plan(ruleset, event("2024-03-01T00:00:00Z"), now)
    assert not plan(ruleset, event("2026-10-01T00:00:00Z"), now)
    (verdict,) = explain(ruleset, event("2026-10-01T00:00:00Z"), now)
    assert "no such earlier purchase (1 items)" in verdict.reason


def test_rules_without_history_facts_do_not_ask_for_them(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "- {name: plain, on: order.created, category: transactional, do: [{tag_order: [x]}]}\n"
    )
    assert load_rules(tmp_path).needs_history is False


def test_a_bad_has_purchased_is_an_error_with_its_place(tmp_path):
    (tmp_path / "r.yaml").write_text(
        textwrap.dedent(
            """
            - name: wrong
              on: order.created
              if:
                - customer.has_purchased: {skuu: X}
              category: transactional
              do: [{tag_order: [x]}]
            """
        ).lstrip()
    )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(tmp_path)
    (error,) = caught.value.errors
    assert "r.yaml:4:" in str(error)
    assert "has_purchased has no 'skuu'; use sku, product_id" in str(error)
