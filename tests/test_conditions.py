"""The condition language: every operator and combinator, any-element lists, Decimal money."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftersale.rules.compiler import ConditionErrors, compile_condition

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CTX = {
    "_now": NOW,
    "order": {
        "id": "1042",
        "financial_status": "paid",
        "total_price": "4590.00",
        "currency": "RSD",
        "tags": ["vip", "gift"],
        "email": "ana@example.com",
        "created_at": (NOW - timedelta(days=3)).isoformat(),
        "line_items": [
            {
                "sku": "KIT-1",
                "title": "Shoe care kit",
                "quantity": 1,
                "price": "1990.00",
                "product_type": "Care",
            },
            {
                "sku": None,
                "title": "Leather boots",
                "quantity": 2,
                "price": "1300.00",
                "product_type": "Boots",
            },
        ],
        "shipping_address": {"country_code": "RS", "city": "Beograd"},
    },
    "customer": {"id": "7", "orders_count": 1, "accepts_email_marketing": True, "tags": []},
}


def holds(spec, ctx=CTX) -> bool:
    return compile_condition(spec)(ctx)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"order.financial_status": "paid"}, True),
        ({"order.financial_status": {"eq": "pending"}}, False),
        ({"order.financial_status": {"ne": "pending"}}, True),
        ({"order.financial_status": {"ne": "paid"}}, False),
        ({"order.total_price": {"gte": 20}}, True),
        ({"order.total_price": {"gt": 4590}}, False),
        ({"order.total_price": {"gte": "4590.00"}}, True),
        ({"order.total_price": {"lt": 4590.01}}, True),
        ({"order.total_price": {"lte": 4589.99}}, False),
        ({"order.total_price": 4590}, True),
        ({"order.financial_status": {"in": ["paid", "partially_refunded"]}}, True),
        ({"order.financial_status": ["pending", "authorized"]}, False),
        ({"order.financial_status": {"not_in": ["pending"]}}, True),
        ({"order.financial_status": {"not_in": ["paid"]}}, False),
        ({"order.tags": {"contains": "vip"}}, True),
        ({"order.tags": {"contains": "vi"}}, False),
        ({"order.email": {"contains": "@example."}}, True),
        ({"order.email": {"matches": r"@example\.com$"}}, True),
        ({"order.email": {"matches": "^bob"}}, False),
        ({"order.email": {"exists": True}}, True),
        ({"order.cancel_reason": {"exists": False}}, True),
        ({"order.cancel_reason": {"exists": True}}, False),
        ({"order.created_at": {"within": "7d"}}, True),
        ({"order.created_at": {"within": "2d"}}, False),
        ({"order.created_at": {"older_than": "2d"}}, True),
        ({"order.created_at": {"older_than": "1w"}}, False),
        ({"customer.accepts_email_marketing": True}, True),
        ({"customer.orders_count": 1}, True),
        ({"customer.tags": {"contains": "vip"}}, False),
    ],
)
def test_operators(spec, expected):
    assert holds(spec) is expected


def test_any_element_semantics_through_lists():
    assert holds({"order.line_items.product_type": {"in": ["Shoes", "Boots"]}})
    assert holds({"order.line_items.sku": "KIT-1"})
    assert not holds({"order.line_items.sku": "KIT-2"})
    assert holds({"order.line_items.price": {"gte": 1990}})
    assert holds({"order.line_items.quantity": {"gt": 1}})
    assert holds({"order.line_items.title": {"matches": "(?i)boots"}})


def test_combinators():
    assert holds([{"order.financial_status": "paid"}, {"order.total_price": {"gte": 20}}])
    assert not holds(
        {"all": [{"order.financial_status": "paid"}, {"order.total_price": {"gte": 10000}}]}
    )
    assert holds(
        {"any": [{"order.financial_status": "pending"}, {"order.tags": {"contains": "gift"}}]}
    )
    assert not holds(
        {"any": [{"order.financial_status": "pending"}, {"order.tags": {"contains": "x"}}]}
    )
    assert holds({"not": {"order.tags": {"contains": "no-review"}}})
    assert not holds({"not": [{"order.tags": {"contains": "vip"}}]})
    assert holds({"order.financial_status": "paid", "order.currency": "RSD"})
    assert holds({"order.total_price": {"gte": 20, "lte": 5000}})
    assert not holds({"order.total_price": {"gte": 20, "lte": 4000}})


def test_missing_paths_are_false_never_errors():
    empty = {"_now": NOW}
    for spec in (
        {"order.total_price": {"gte": 1}},
        {"order.financial_status": {"ne": "paid"}},
        {"order.financial_status": {"not_in": ["paid"]}},
        {"order.tags": {"contains": "x"}},
        {"fulfillment.tracking_url": {"matches": "."}},
        {"order.created_at": {"within": "1d"}},
    ):
        assert holds(spec, empty) is False
    assert holds({"order.total_price": {"exists": False}}, empty) is True


def test_explain_names_the_failing_check_and_actual_value():
    condition = compile_condition(
        [{"order.financial_status": "paid"}, {"order.total_price": {"gte": 10000}}]
    )
    assert condition.explain(CTX) == "order.total_price gte 10000: actual '4590.00'"
    assert compile_condition({"order.total_price": {"gte": 1}}).explain(CTX) is None
    assert (
        compile_condition({"refund.amount": {"gt": 0}}).explain(CTX)
        == "refund.amount gt 0: actual missing"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"order.total_price": {"gte": "lots"}}, "gte: expects a number, got 'lots'"),
        ({"order.email": {"matches": "("}}, "matches: bad regular expression"),
        ({"order.tags": {"in": []}}, "in: expects a non-empty list"),
        ({"order.created_at": {"within": "2 days"}}, "within: bad duration '2 days'"),
        ({"order.email": {"exists": "yes"}}, "exists: expects true or false"),
        (
            {"ordr.total_price": 1},
            "unknown field 'ordr.total_price': events have no 'ordr' (did you mean 'order'?)",
        ),
        ({"any": []}, "'any' expects a non-empty list of conditions"),
        ({"eq": 5}, "operator 'eq' must be under a field"),
    ],
)
def test_compile_errors(spec, message):
    with pytest.raises(ConditionErrors) as caught:
        compile_condition(spec)
    assert message in str(caught.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
CONDITIONS = [
    {"order.total_price": {"gte": 20}},
    {"order.line_items.product_type": {"in": ["Shoes", "Boots"]}},
    {"order.tags": {"contains": "vip"}},
    {"order.email": {"matches": "@"}},
    {"order.created_at": {"within": "2d"}},
    {"not": {"customer.accepts_email_marketing": True}},
    {"any": [{"order.financial_status": {"ne": "paid"}}, {"order.line_items.quantity": {"lt": 3}}]},
    {"order.cancel_reason": {"exists": False}},
    {"order.line_items.sku": {"not_in": ["A"]}},
]


@settings(max_examples=300, deadline=None)
@given(order=json_values, customer=json_values)
def test_evaluation_never_raises_on_arbitrary_event_shapes(order, customer):
    ctx = {"_now": NOW, "order": order, "customer": customer}
    for spec in CONDITIONS:
        condition = compile_condition(spec)
        assert condition(ctx) in (True, False)
        condition.explain(ctx)
