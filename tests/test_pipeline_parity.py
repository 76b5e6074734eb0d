"""``rules test`` says what production does: the same fixtures through both, the same plans.

Production here is the whole path: signed webhooks to the receiver, a real RQ
worker, the scheduler when waits are over, mail to the SMTP server. The
simulation is ``rules/simulate.py`` on the same files at the same time. They
used to disagree: a repeated delivery planned twice in ``rules test``, and a
WooCommerce marketing mail showed as planned where production skipped it for
consent. Both now run ``rules/pipeline.py``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.rules.simulate import simulate
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import FIXTURES, post_shopify, rows
from tests.test_woocommerce import headers_of, woo_shop  # noqa: F401  (fixture)

SHOPIFY_STORY = [
    "orders__create",
    "orders__create",  # delivered again by Shopify under a new webhook id
    "fulfillments__create",
    "fulfillments__update__delivered",
    "refunds__create",
]
WOO_STORY = [
    "order.created__processing",
    "order.created__processing",  # the same body again
    "order.updated__completed_with_tracking",
    "order.updated__partially_refunded",
]

#: when each story is replayed: a minute after its last event (the refund), as if the
#: webhooks had come when things happened. On the wall clock the test changed its answer
#: on 2026-11-30 at 15:22:51 UTC, when the review invite (delivered + 7 days) fell due
#: before the replay: production then sends it at once, before the refund is processed.
SHOPIFY_STORY_AT = datetime(2026, 11, 25, 13, 13, 40, tzinfo=UTC)
WOO_STORY_AT = datetime(2026, 11, 25, 9, 13, 48, tzinfo=UTC)

#: a marketing mail on an event both platforms send: consent decides, at send time
MARKETING_RULE = """
- name: welcome-offer
  on: order.created
  wait: 1d
  once_per: order
  category: marketing
  do:
    - email: {template: cross_sell}
"""


@pytest.fixture
def rules_dir(tmp_path):
    """The starter pack plus a marketing mail a day after every order."""
    folder = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parent.parent / "examples" / "starter", folder)
    (folder / "marketing.yaml").write_text(MARKETING_RULE)
    return folder


def _describe(action_type: str, params: dict) -> str:
    return f"{action_type} {params['template']}" if "template" in params else action_type


def production(runtime, scheduler, work, clock) -> dict:
    """(rule, step, due) -> (final status, skip reason) after every wait has run out."""
    start = clock.now()
    clock.set(start + timedelta(days=30))
    scheduler.tick(clock.now())
    work()
    clock.set(start)
    return {
        (a.rule, _describe(a.action_type, a.params), a.due_at): (a.status, a.skip_reason)
        for a in rows(runtime.engine, actions)
    }


def simulated(runtime, files, at) -> dict:
    outcomes, _ = simulate(runtime.rules, files, at=at)
    found = {}
    for outcome in outcomes:
        for event in outcome.events:
            for step in event.planned:
                if step.problem and "once per key" in step.problem:
                    continue
                found[(step.rule, step.step, step.due_at)] = step
    return found


def assert_same(prod: dict, sim: dict) -> None:
    assert set(prod) == set(sim), f"production {sorted(prod)} vs rules test {sorted(sim)}"
    for key, (status, skip_reason) in prod.items():
        step = sim[key]
        cancelled = (status, skip_reason) == ("skipped", "cancelled")
        assert cancelled == (step.cancelled_by is not None), key
        if status == "skipped" and skip_reason == "no_consent":
            assert step.skip and step.skip.startswith("no_consent"), key
        if status == "sent":
            assert step.skip is None, key


def test_a_shopify_story_plans_the_same_in_production_and_rules_test(
    client, work, runtime, scheduler, clock
):
    clock.set(SHOPIFY_STORY_AT)
    at = clock.now()
    for n, name in enumerate(SHOPIFY_STORY):
        body = (FIXTURES / "shopify" / f"{name}.json").read_bytes()
        topic = "/".join(name.split("__")[:2])
        response = post_shopify(client, topic, body, SHOPIFY_SECRET, webhook_id=f"parity-{n}")
        assert response.status_code == 200
        work()
    prod = production(runtime, scheduler, work, clock)
    sim = simulated(runtime, [FIXTURES / "shopify" / f"{n}.json" for n in SHOPIFY_STORY], at)
    assert_same(prod, sim)
    assert ("skipped", "cancelled") in prod.values(), "the refund cancels the review invite"
    assert sum(1 for key in prod if key[0] == "thank-you") == 1, "the repeat planned once"


def test_a_woocommerce_story_plans_and_skips_the_same(
    app, work, runtime, scheduler, clock, woo_shop
):
    clock.set(WOO_STORY_AT)
    at = clock.now()
    client = app.test_client()
    for name in WOO_STORY:
        body = (FIXTURES / "woocommerce" / f"{name}.json").read_bytes()
        response = client.post("/webhooks/woocommerce", data=body, headers=headers_of(name, body))
        assert response.status_code == 200, response.get_data(as_text=True)
        work()
    prod = production(runtime, scheduler, work, clock)
    sim = simulated(runtime, [FIXTURES / "woocommerce" / f"{n}.json" for n in WOO_STORY], at)
    assert_same(prod, sim)
    (welcome,) = [key for key in prod if key[0] == "welcome-offer"]
    assert prod[welcome] == ("skipped", "no_consent"), "WooCommerce orders carry no consent"
    assert sim[welcome].skip.startswith("no_consent")


@pytest.mark.parametrize("story", [SHOPIFY_STORY])
def test_rules_test_json_marks_the_repeat(cli_runner, tmp_path, story):
    from aftersale.cli import build

    env = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "k",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    files = [str(FIXTURES / "shopify" / f"{n}.json") for n in story[:2]]
    result = cli_runner.invoke(build(), ["rules", "test", "--json", *files], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    first, second = (f["events"][0] for f in report["files"])
    assert first["repeated"] is False and first["actions"]
    assert second["repeated"] is True and second["actions"] == []
