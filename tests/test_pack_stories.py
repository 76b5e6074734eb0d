"""One story per example pack, on both platforms: the pack as shipped, and the mails it sends.

Each story posts a customer's order from checkout to delivery (and, where the
pack listens for it, a refund or a return) as the platform sends it: signed
webhooks to the receiver, a real RQ worker, the scheduler moving the clock to
each due time, mail to the SMTP server. Marketing needs consent, given the
platform's way: Shopify's consent webhook, or Mailchimp for WooCommerce's
checkout box in the order's meta (tests/fixtures/woocommerce/SOURCES.md).

WooCommerce delivery comes from TrackShip's ``ts_shipment_status`` meta
(``order.updated__trackship_*``, the delivery signals of issue 20, built in
connectors/woocommerce/shipments.py). WooCommerce has no return events, so the
returns pack's survey is a Shopify-only mail; there is no out-for-delivery or
failed-attempt fixture for WooCommerce, so those shipping mails are Shopify's.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import FIXTURES, load_fixture, post_shopify, rows
from tests.test_woocommerce import headers_of, woo_shop  # noqa: F401  (fixture)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # after every fixture's own time
MAILCHIMP = "mailchimp_woocommerce_is_subscribed"

SHOPIFY_BUYER = "ana.petrovic@example.com"
WOO_BUYER = "milica.jovanovic@example.com"

#: (topic, fixture) in the order they happen
SHOPIFY_ORDER = [("orders/create", "orders__create")]
SHOPIFY_SHIPPED = [("fulfillments/create", "fulfillments__create")]
SHOPIFY_DELIVERED = [("fulfillments/update", "fulfillments__update__delivered")]
SHOPIFY_REFUND = [("refunds/create", "refunds__create")]

WOO_ORDER = ["order.created__pending", "order.updated__processing"]
WOO_SHIPPED = ["order.updated__completed_with_tracking"]
WOO_DELIVERED = ["order.updated__trackship_in_transit", "order.updated__trackship_delivered"]
#: the refunds of ``order.updated__refunded`` (two, the second making it full) on the
#: delivered order: that fixture's story replaced the parcel, which this story did not
WOO_REFUND = ["order.updated__refunded"]

#: pack -> (Shopify story, WooCommerce story)
STORIES = {
    "starter": (
        SHOPIFY_ORDER + SHOPIFY_SHIPPED + SHOPIFY_DELIVERED + SHOPIFY_REFUND,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED + WOO_REFUND,
    ),
    "shipping-updates": (
        SHOPIFY_ORDER
        + SHOPIFY_SHIPPED
        + [
            ("fulfillments/update", "fulfillments__update__out_for_delivery"),
            ("fulfillments/update", "fulfillments__update__attempted_delivery"),
        ]
        + SHOPIFY_DELIVERED,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED,
    ),
    "returns-info": (
        SHOPIFY_ORDER
        + SHOPIFY_SHIPPED
        + SHOPIFY_DELIVERED
        + SHOPIFY_REFUND
        + [("returns/close", "returns__close")],
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED + WOO_REFUND,
    ),
    "review-invites": (
        SHOPIFY_ORDER + SHOPIFY_SHIPPED + SHOPIFY_DELIVERED,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED,
    ),
    "thank-you": (SHOPIFY_ORDER, WOO_ORDER),
    "care-and-cross-sell": (
        SHOPIFY_ORDER + SHOPIFY_SHIPPED + SHOPIFY_DELIVERED,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED,
    ),
    "replenishment": (
        SHOPIFY_ORDER + SHOPIFY_SHIPPED + SHOPIFY_DELIVERED,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED,
    ),
    "cross-sell-and-replenish": (
        SHOPIFY_ORDER + SHOPIFY_SHIPPED + SHOPIFY_DELIVERED,
        WOO_ORDER + WOO_SHIPPED + WOO_DELIVERED,
    ),
}

#: pack -> platform -> the mails sent, by rule (compared sorted: several are due at once)
EXPECTED = {
    "starter": {
        # the refund two days after delivery cancels the review invite due a week after it
        "shopify": ["thank-you", "shipping-update", "refund-confirmation"],
        "woocommerce": [
            "thank-you",
            "shipping-update",
            "refund-confirmation",
            "refund-confirmation",
        ],
    },
    "shipping-updates": {
        "shopify": ["shipping-update", "out-for-delivery", "delivery-problem", "delivered"],
        "woocommerce": ["shipping-update", "delivered"],
    },
    "returns-info": {
        "shopify": ["returns-info", "refund-confirmation", "return-survey"],
        "woocommerce": ["returns-info", "refund-confirmation", "refund-confirmation"],
    },
    "review-invites": {
        "shopify": ["review-invite", "review-reminder"],
        "woocommerce": ["review-invite", "review-reminder"],
    },
    "thank-you": {
        "shopify": ["thank-you-first-order"],
        "woocommerce": ["thank-you-first-order"],
    },
    "care-and-cross-sell": {
        "shopify": ["care-tips", "cross-sell"],
        "woocommerce": ["care-tips", "cross-sell"],
    },
    "replenishment": {
        # winback: ninety days after the order, no order since
        "shopify": ["replenish-shoe-care", "winback"],
        "woocommerce": ["replenish-coffee", "winback"],
    },
    "cross-sell-and-replenish": {
        # a new store has no pairs yet: no cross-sell mail; the reminder uses its fallback
        # (tests/test_recommendations.py and test_repurchase.py tell the learned story)
        "shopify": ["replenish-learned"],
        "woocommerce": ["replenish-learned"],
    },
}


@pytest.fixture
def pack() -> str:
    return "starter"  # parametrized by each test


@pytest.fixture
def rules_dir(tmp_path, pack):
    folder = tmp_path / "rules"
    shutil.copytree(EXAMPLES / pack, folder)
    return folder


def test_every_pack_has_a_story():
    assert sorted(STORIES) == sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())


def run_to_the_end(runtime, clock, scheduler, work) -> None:
    """Move the clock to each due time in turn, as the scheduler would see it pass."""
    for _ in range(50):
        pending = [a.due_at for a in rows(runtime.engine, actions) if a.status == "scheduled"]
        if not pending:
            return
        clock.set(max(clock.now(), min(pending) + timedelta(seconds=1)))
        scheduler.tick(clock.now())
        work()
    raise AssertionError("actions still scheduled after 50 rounds")


def sent_mails(runtime, smtp_server, buyer: str) -> list[str]:
    """The rules whose mail went out, sorted; each one really reached SMTP."""
    sent = [a for a in rows(runtime.engine, actions) if a.status == "sent"]
    mails = [a for a in sent if a.action_type == "email"]
    delivered = smtp_server.handler.messages
    assert len(delivered) == len(mails)
    assert {m["To"] for m in delivered} <= {buyer}
    assert all(m["Subject"] for m in delivered)
    return sorted(a.rule for a in mails)


@pytest.mark.parametrize("pack", sorted(STORIES))
def test_shopify_story(pack, app, work, runtime, clock, scheduler, smtp_server):
    clock.set(START)
    client = app.test_client()
    consent = load_fixture("shopify", "customers_email_marketing_consent__update")
    consent["email_marketing_consent"].update(
        state="subscribed", consent_updated_at="2026-11-20T15:00:00Z"
    )
    steps = [("customers_email_marketing_consent/update", consent), *STORIES[pack][0]]
    for topic, fixture in steps:
        body = fixture if isinstance(fixture, dict) else load_fixture("shopify", fixture)
        assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
        work()
    run_to_the_end(runtime, clock, scheduler, work)
    assert sent_mails(runtime, smtp_server, SHOPIFY_BUYER) == sorted(EXPECTED[pack]["shopify"])


def woo_body(name: str) -> bytes:
    """A story fixture as WooCommerce sends it, the buyer having ticked Mailchimp's box at
    checkout (the meta stays on every later payload of the order) and bought coffee."""
    body = _fixture(name)
    if name in WOO_REFUND:
        refunded, body = body, _fixture("order.updated__trackship_delivered")
        for key in ("status", "refunds", "date_modified", "date_modified_gmt"):
            body[key] = refunded[key]
    meta_ids = [m["id"] for m in body["meta_data"]]
    body["meta_data"].append(
        {"id": max(meta_ids, default=90000) + 1, "key": MAILCHIMP, "value": "1"}
    )
    body["line_items"][0]["sku"] = (
        "KAFA-ESPRESSO-250"  # a SKU the care and replenishment packs list
    )
    return json.dumps(body, separators=(",", ":")).encode()


def _fixture(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / "woocommerce" / f"{name}.json").read_text()))


@pytest.mark.parametrize("pack", sorted(STORIES))
def test_woocommerce_story(pack, app, work, runtime, clock, scheduler, smtp_server, woo_shop):
    clock.set(START)
    client = app.test_client()
    for name in STORIES[pack][1]:
        raw = woo_body(name)
        response = client.post("/webhooks/woocommerce", data=raw, headers=headers_of(name, raw))
        assert response.status_code == 200, response.get_data(as_text=True)
        work()
    run_to_the_end(runtime, clock, scheduler, work)
    assert sent_mails(runtime, smtp_server, WOO_BUYER) == sorted(EXPECTED[pack]["woocommerce"])
