"""``aftersale actions`` and ``aftersale deliveries replay``, run as a user runs them."""

from __future__ import annotations

import pytest

from aftersale.cli import build
from aftersale.store.tables import actions, deliveries, events
from tests.action_helpers import plant, store_event
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, fixture_bytes, post_shopify, rows
from tests.test_cli import env_for

EMAIL = ("email", {"template": "thank_you"})


@pytest.fixture
def cli(cli_runner, config):
    def invoke(*args):
        return cli_runner.invoke(build(), list(args), env=env_for(config), catch_exceptions=False)

    return invoke


def test_show_explains_why_the_customer_got_the_mail(client, work, runtime, cli, smtp_server):
    body = fixture_bytes("shopify", "orders__create")
    post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id="wh-123")
    work()
    (action,) = rows(runtime.engine, actions)
    result = cli("actions", "show", str(action.id))
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "delivery 1: orders/create, webhook wh-123",
        "event 1: order.created",
        "rule thank-you",
        "orders.yaml",
        f"to {action.recipient}",
        action.subject,
        "1 attempt(s)",
        "sent",
    ):
        assert expected in out, out
    assert out.index("delivery 1") < out.index("event 1") < out.index("rule thank-you")


def test_list_filters_by_status_shop_and_order(runtime, cli, clock):
    from datetime import timedelta

    shop_id, event_id, event = store_event(runtime)
    ids = plant(
        runtime, shop_id, event_id, event, [EMAIL], due_at=clock.now() + timedelta(days=1), count=2
    )
    with runtime.engine.begin() as conn:
        conn.execute(
            actions.update()
            .where(actions.c.id == ids[0])
            .values(status="dead", last_error="gave up")
        )
    dead = cli("actions", "list", "--status", "dead", "--shop", "aftersale-demo.myshopify.com")
    assert dead.exit_code == 0 and "1 action(s)" in dead.output and "gave up" in dead.output
    by_order = cli("actions", "list", "--order", event.order_ref)
    assert "2 action(s)" in by_order.output
    assert "0 action(s)" in cli("actions", "list", "--order", "nope").output


def test_retry_dead_letters_and_cancel(runtime, cli, clock):
    from datetime import timedelta

    shop_id, event_id, event = store_event(runtime)
    dead, failed, pending = plant(
        runtime, shop_id, event_id, event, [EMAIL], due_at=clock.now() + timedelta(days=1), count=3
    )
    with runtime.engine.begin() as conn:
        conn.execute(actions.update().where(actions.c.id == dead).values(status="dead", attempts=8))
        conn.execute(
            actions.update().where(actions.c.id == failed).values(status="failed", attempts=1)
        )

    result = cli("actions", "retry", "--all-dead")
    assert result.exit_code == 0 and f"1 action(s) due again now: {dead}" in result.output
    again = rows(runtime.engine, actions, actions.c.id == dead)[0]
    assert again.status == "scheduled" and again.max_attempts == 16

    assert cli("actions", "retry", str(failed)).exit_code == 0
    assert rows(runtime.engine, actions, actions.c.id == failed)[0].status == "scheduled"
    refused = cli("actions", "retry", str(pending))
    assert refused.exit_code == 1 and "not retried" in refused.output

    assert cli("actions", "cancel", str(pending)).exit_code == 0
    cancelled = rows(runtime.engine, actions, actions.c.id == pending)[0]
    assert (cancelled.status, cancelled.skip_reason) == ("skipped", "cancelled")
    twice = cli("actions", "cancel", str(pending))
    assert twice.exit_code == 1 and "only scheduled, waiting or queued" in twice.output
    assert cli("actions", "show", "999").exit_code == 1


def test_replay_a_delivery_is_idempotent(client, app, runtime, cli):
    body = fixture_bytes("shopify", "orders__create")
    post_shopify(client, "orders/create", body, SHOPIFY_SECRET)
    assert app.extensions["aftersale.receiver"].writer.drain()
    (delivery,) = rows(runtime.engine, deliveries)

    first = cli("deliveries", "replay", str(delivery.id))
    assert first.exit_code == 0, first.output
    assert "processed; 1 new event(s), 1 new action(s)" in first.output
    second = cli("deliveries", "replay", str(delivery.id))
    assert "processed; 0 new event(s), 0 new action(s)" in second.output
    assert count(runtime.engine, events) == 1 and count(runtime.engine, actions) == 1
    assert cli("deliveries", "replay", "999").exit_code == 1


def test_a_worker_whose_rules_send_sms_needs_sms_url_to_start(cli_runner, config, tmp_path):
    folder = tmp_path / "sms-rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(
        "- name: out-for-delivery\n"
        "  on: shipment.out_for_delivery\n"
        "  category: transactional\n"
        "  do:\n"
        "    - sms: 'Order {{ order.name }} arrives today'\n"
    )
    env = {**env_for(config), "RULES_DIR": str(folder)}
    result = cli_runner.invoke(build(), ["worker", "--burst"], env=env)
    assert result.exit_code == 1
    assert "SMS_URL is not set" in result.output
    env["SMS_URL"] = "twilio://AC1:token@api.twilio.com?from=%2B15005550006"
    assert cli_runner.invoke(build(), ["worker", "--burst"], env=env).exit_code == 0


def test_migration_0002_upgrades_and_downgrades(database_url):
    from sqlalchemy import inspect

    from aftersale.store import migrate
    from aftersale.store.db import make_engine

    def indexes():
        engine = make_engine(database_url)
        try:
            return {ix["name"] for ix in inspect(engine).get_indexes("actions")}
        finally:
            engine.dispose()

    assert "ix_actions_event_id" in indexes()
    migrate.downgrade(database_url, "0001")
    try:
        assert migrate.current(database_url) == "0001"
        assert "ix_actions_event_id" not in indexes()
        assert "ix_actions_status_due_at" in indexes()
    finally:
        migrate.upgrade(database_url)
    assert "ix_actions_event_id" in indexes()
