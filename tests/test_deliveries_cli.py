"""``aftersale deliveries list`` and ``show``: stored webhooks found without SQL, and
``actions show`` with the rules that did not match beside what happened."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from aftersale.cli import build
from aftersale.store import deliveries as delivery_store
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import DEMO_SHOP, fixture_bytes, post_shopify, rows
from tests.test_cli import env_for

ROOT = Path(__file__).resolve().parent.parent
BIG_SPENDER = """
- name: big-spender
  on: order.created
  if:
    - order.total_price: {gte: 100000}
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    for name in ("settings.yaml", "orders.yaml"):
        shutil.copy(ROOT / "examples" / "starter" / name, folder / name)
    (folder / "vip.yaml").write_text(BIG_SPENDER)
    return folder


@pytest.fixture
def cli(cli_runner, config):
    def invoke(*args):
        return cli_runner.invoke(build(), list(args), env=env_for(config), catch_exceptions=False)

    return invoke


@pytest.fixture
def two_deliveries(client, work, runtime, clock):
    """orders/create a day ago (processed, one rule matched, one not) and orders/paid now,
    which processing gave up on. (The CLI reads the system clock: "now" is real.)"""
    clock.advance(timedelta(days=-1))
    body = fixture_bytes("shopify", "orders__create")
    post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id="wh-create")
    work()
    clock.advance(timedelta(days=1))
    paid = fixture_bytes("shopify", "orders__paid")
    answer = post_shopify(client, "orders/paid", paid, SHOPIFY_SECRET, webhook_id="wh-paid")
    failed_id = answer.json["delivery"]
    with runtime.engine.begin() as conn:
        delivery_store.record_failure(
            conn, failed_id, "RuntimeError: the test says so", clock.now(), 1
        )
    return 1, failed_id


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table, as cells."""
    return [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_list_filters_by_shop_topic_outcome_and_since(cli, two_deliveries):
    created, failed = two_deliveries
    everything = table_rows(cli("deliveries", "list").output)
    assert [r[:3] for r in everything] == [
        [str(failed), DEMO_SHOP, "orders/paid"],
        [str(created), DEMO_SHOP, "orders/create"],
    ]
    assert [r[4] for r in everything] == ["failed", "processed"]
    assert "the test says so" in everything[0][-1]

    def ids(*args):
        result = cli("deliveries", "list", *args)
        assert result.exit_code == 0, result.output
        return [int(r[0]) for r in table_rows(result.output)]

    assert ids("--topic", "orders/create") == [created]
    assert ids("--outcome", "failed") == [failed]
    assert ids("--outcome", "processed", "--shop", DEMO_SHOP) == [created]
    assert ids("--shop", "other.myshopify.com") == []
    assert ids("--since", "2h") == [failed]
    assert ids("--since", "3d") == [failed, created]
    assert ids("--limit", "1") == [failed]


def test_list_says_what_a_bad_since_should_be(cli_runner, config):
    result = cli_runner.invoke(
        build(), ["deliveries", "list", "--since", "lately"], env=env_for(config)
    )
    assert result.exit_code == 2
    assert "--since" in result.output and "30m, 2h, 7d" in result.output


def test_show_follows_a_delivery_to_events_rules_and_actions(cli, two_deliveries, runtime):
    created, _ = two_deliveries
    result = cli("deliveries", "show", str(created))
    assert result.exit_code == 0, result.output
    out = result.output
    (action,) = rows(runtime.engine, actions)
    for expected in (
        f"delivery {created}",
        f"{DEMO_SHOP} (shopify)",
        "orders/create",
        "wh-create",
        "processed",
        "order.created",
        f"action {action.id}: thank-you step 0 email, sent",
        "not matched: big-spender: order.total_price gte 100000; actual '4590.00'",
    ):
        assert expected in out, out
    assert "ana.petrovic" not in out  # no body, no customer details
    assert cli("deliveries", "show", "999").exit_code == 1


def test_actions_show_lists_the_rules_that_did_not_match(cli, two_deliveries, runtime):
    (action,) = rows(runtime.engine, actions)
    out = cli("actions", "show", str(action.id)).output
    assert (
        "-x rule big-spender did not match: order.total_price gte 100000; actual '4590.00'" in out
    )
    assert out.index("rule thank-you") < out.index("-x rule big-spender")


def test_why_not_records_expire_with_the_scheduler(two_deliveries, runtime, clock, scheduler, cli):
    (action,) = rows(runtime.engine, actions)
    clock.advance(timedelta(days=runtime.config.rule_miss_days + 1))
    report = scheduler.tick(clock.now())
    assert report.rule_misses_expired == 1
    assert "did not match" not in cli("actions", "show", str(action.id)).output
