"""Platform steps through the connector against a Shopify GraphQL Admin API stand-in:
tags, notes, single-use discount codes used by the rule's next step, and throttling."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from werkzeug import Response

from aftersale.connectors.shopify.api import API_VERSION
from aftersale.runtime import Runtime, install
from aftersale.store.tables import actions, messages
from aftersale.workers.runner import make_worker
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import configure_shop, hand_off, plant, store_event
from tests.helpers import load_fixture, rows

ORDER = load_fixture("shopify", "orders__create")
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"
THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {
        "cost": {
            "requestedQueryCost": 10,
            "actualQueryCost": None,
            "throttleStatus": {
                "maximumAvailable": 2000.0,
                "currentlyAvailable": 0,
                "restoreRate": 100.0,
            },
        }
    },
}


class ShopifyStandIn:
    """Answers the operations Aftersale sends, recording each (query name, variables)."""

    def __init__(self, httpserver):
        self.calls = []
        self.note = "Gift wrap, please"
        self.queued: list[dict] = []  # answers to give first, whatever is asked
        self.codes: dict[str, str] = {}
        httpserver.expect_request(GRAPHQL, method="POST").respond_with_handler(self)

    def __call__(self, request):
        assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
        body = request.get_json()
        name = body["query"].split("(")[0].split()[-1]
        self.calls.append((name, body["variables"]))
        answer = self.queued.pop(0) if self.queued else self.answer(name, body["variables"])
        return Response(json.dumps(answer), content_type="application/json")

    def answer(self, name: str, variables: dict) -> dict:
        if name == "tagsAdd":
            return {"data": {"tagsAdd": {"node": {"id": variables["id"]}, "userErrors": []}}}
        if name == "orderNote":
            return {"data": {"order": {"id": variables["id"], "note": self.note}}}
        if name == "orderUpdate":
            self.note = variables["input"]["note"]
            return {
                "data": {
                    "orderUpdate": {"order": {"id": variables["input"]["id"]}, "userErrors": []}
                }
            }
        if name == "discountCodeBasicCreate":
            code = variables["input"]["code"]
            if code in self.codes:
                error = {
                    "field": ["basicCodeDiscount", "code"],
                    "code": "TAKEN",
                    "message": "Code must be unique.",
                }
                return {
                    "data": {
                        "discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": [error]}
                    }
                }
            self.codes[code] = f"gid://shopify/DiscountCodeNode/{len(self.codes) + 1}"
            node = {"id": self.codes[code]}
            return {
                "data": {"discountCodeBasicCreate": {"codeDiscountNode": node, "userErrors": []}}
            }
        if name == "discountByCode":
            found = self.codes.get(variables["code"])
            return {"data": {"codeDiscountNodeByCode": {"id": found} if found else None}}
        raise AssertionError(f"unexpected operation {name}")


@pytest.fixture
def shop_runtime(config, clock, httpserver, tmp_path):
    templates = tmp_path / "templates"
    offer = templates / "discount_offer"
    offer.mkdir(parents=True)
    (offer / "subject.txt").write_text("A thank-you for order {{ order.name }}")
    (offer / "body.txt").write_text(
        "Use {{ discount.code }} for {{ discount.value }}% off, until {{ discount.expires_at | date }}."
    )
    rt = Runtime(config.replace(templates_dir=templates), clock)
    install(rt)
    yield rt
    rt.close()
    install(None)


@pytest.fixture
def shop(shop_runtime, httpserver):
    shop_id, event_id, event = store_event(shop_runtime)
    configure_shop(
        shop_runtime,
        shop_id,
        credentials={"access_token": "shpat_test"},
        api_url=httpserver.url_for("/").rstrip("/"),
    )
    return shop_id, event_id, event


def run(rt, ids=None):
    if ids:
        hand_off(rt, ids)
    make_worker(rt).work(burst=True, logging_level="WARNING", with_scheduler=False)


def test_tag_order_and_customer(shop_runtime, shop, httpserver):
    api = ShopifyStandIn(httpserver)
    steps = [
        ("tag_order", {"tags": ["review-requested"]}),
        ("tag_customer", {"tags": ["vip", "repeat"]}),
    ]
    run(shop_runtime, plant(shop_runtime, *shop, steps))
    assert api.calls == [
        ("tagsAdd", {"id": f"gid://shopify/Order/{ORDER['id']}", "tags": ["review-requested"]}),
        (
            "tagsAdd",
            {"id": f"gid://shopify/Customer/{ORDER['customer']['id']}", "tags": ["vip", "repeat"]},
        ),
    ]
    assert [a.status for a in rows(shop_runtime.engine, actions)] == ["sent", "sent"]


def test_order_note_is_appended_once(shop_runtime, shop, httpserver):
    api = ShopifyStandIn(httpserver)
    ids = plant(
        shop_runtime, *shop, [("note_order", {"note": "Review invite sent for {{ order.name }}"})]
    )
    run(shop_runtime, ids)
    assert api.note == f"Gift wrap, please\nReview invite sent for {ORDER['name']}"
    # the same note again (a retry after a crash) is not added twice
    from aftersale.connectors.shopify import ShopifyConnector
    from aftersale.store import shops as shop_store

    with shop_runtime.engine.connect() as conn:
        access = shop_store.access(shop_store.get_shop(conn, shop[0]), shop_runtime.config)
    ShopifyConnector().add_order_note(
        access,
        ORDER["id"],
        f"Review invite sent for {ORDER['name']}",
        session=shop_runtime.platform_session(),
    )
    assert api.note.count("Review invite sent") == 1


def test_discount_code_is_created_then_used_by_the_next_step(
    shop_runtime, shop, httpserver, smtp_server
):
    api = ShopifyStandIn(httpserver)
    steps = [
        (
            "discount_code",
            {"value": "15", "type": "percentage", "expires_in": "30d", "prefix": "THANKS"},
        ),
        ("email", {"template": "discount_offer"}),
    ]
    discount_id, email_id = plant(shop_runtime, *shop, steps)
    run(shop_runtime, [discount_id, email_id])

    ((name, variables),) = api.calls
    sent = variables["input"]
    assert name == "discountCodeBasicCreate"
    assert sent["code"].startswith("THANKS-") and sent["usageLimit"] == 1
    assert sent["customerGets"]["value"] == {"percentage": 0.15}
    assert sent["context"] == {
        "customers": {"add": [f"gid://shopify/Customer/{ORDER['customer']['id']}"]}
    }
    discount, email = rows(shop_runtime.engine, actions)
    assert discount.status == "sent" and discount.result["code"] == sent["code"]
    assert discount.provider_id == "gid://shopify/DiscountCodeNode/1"
    (message,) = smtp_server.handler.messages
    assert f"Use {sent['code']} for 15% off" in message.get_body(("plain",)).get_content()
    assert email.status == "sent"


def test_a_later_step_waits_for_the_code(shop_runtime, shop, httpserver, smtp_server, clock):
    ShopifyStandIn(httpserver)
    steps = [("discount_code", {"value": "10"}), ("email", {"template": "discount_offer"})]
    discount_id, email_id = plant(shop_runtime, *shop, steps)
    run(shop_runtime, [email_id])  # the email's job runs before the code exists
    email = rows(shop_runtime.engine, actions, actions.c.id == email_id)[0]
    assert (email.status, email.attempts) == ("scheduled", 0)
    assert "waiting for step 0" in email.last_error
    run(shop_runtime, [discount_id])
    clock.advance(timedelta(seconds=31))
    assert Scheduler(shop_runtime).tick(clock.now()).actions_enqueued == 1
    run(shop_runtime)
    assert [a.status for a in rows(shop_runtime.engine, actions)] == ["sent", "sent"]
    assert len(smtp_server.handler.messages) == 1


def test_a_code_already_created_by_a_lost_attempt_is_looked_up(shop_runtime, shop, httpserver):
    api = ShopifyStandIn(httpserver)
    (action_id,) = plant(
        shop_runtime, *shop, [("discount_code", {"value": "5", "type": "fixed_amount"})]
    )
    from aftersale.workers.executors.platform import discount_code

    action = rows(shop_runtime.engine, actions)[0]
    code = discount_code(shop_runtime.config.secret_key, action, None)
    api.codes[code] = "gid://shopify/DiscountCodeNode/77"  # created before the worker died
    run(shop_runtime, [action_id])
    (action,) = rows(shop_runtime.engine, actions)
    assert action.status == "sent" and action.result["code"] == code
    assert action.provider_id == "gid://shopify/DiscountCodeNode/77"
    assert [name for name, _ in api.calls] == ["discountCodeBasicCreate", "discountByCode"]


def test_throttled_waits_for_the_bucket_to_refill(shop_runtime, shop, httpserver, clock):
    api = ShopifyStandIn(httpserver)
    api.queued.append(THROTTLED)
    (action_id,) = plant(shop_runtime, *shop, [("tag_order", {"tags": ["x"]})])
    throttled_at = clock.now()
    run(shop_runtime, [action_id])
    (action,) = rows(shop_runtime.engine, actions)
    assert action.status == "scheduled" and "throttled" in action.last_error
    assert action.due_at >= throttled_at + timedelta(seconds=1)
    clock.set(action.due_at)
    Scheduler(shop_runtime).tick(clock.now())
    run(shop_runtime)
    (action,) = rows(shop_runtime.engine, actions)
    assert (action.status, action.attempts) == ("sent", 2)
    assert [m.status for m in rows(shop_runtime.engine, messages)] == ["transient_error", "sent"]


def test_throttle_wait_comes_from_the_reported_cost():
    from aftersale.connectors.shopify.api import throttle_wait

    assert throttle_wait(THROTTLED["extensions"]) == 1.0
    slow = {
        "cost": {
            "requestedQueryCost": 500,
            "throttleStatus": {"currentlyAvailable": 100, "restoreRate": 50},
        }
    }
    assert throttle_wait(slow) == 8.0


def test_user_errors_and_missing_token_fail_permanently(shop_runtime, shop, httpserver):
    api = ShopifyStandIn(httpserver)
    api.queued.append(
        {
            "data": {
                "tagsAdd": {
                    "node": None,
                    "userErrors": [{"field": ["id"], "message": "Order does not exist"}],
                }
            }
        }
    )
    run(shop_runtime, plant(shop_runtime, *shop, [("tag_order", {"tags": ["x"]})]))
    configure_shop(shop_runtime, shop[0], credentials={})
    run(shop_runtime, plant(shop_runtime, *shop, [("tag_order", {"tags": ["y"]})], rule="other"))
    first, second = rows(shop_runtime.engine, actions)
    assert first.status == "failed" and "Order does not exist" in first.last_error
    assert second.status == "failed" and "no Shopify access token" in second.last_error
