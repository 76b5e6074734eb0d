"""End to end on real services: signed webhook -> Flask -> DB -> RQ worker -> rules -> SMTP."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from aftersale.core.config import Config
from aftersale.core.events import parse_time
from aftersale.runtime import Runtime, install
from aftersale.store.tables import actions, deliveries, events, messages
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.helpers import count, fixture_bytes, load_fixture, post_shopify, rows

SHOP = "aftersale-demo.myshopify.com"


def send(client, topic, name=None, **kwargs):
    body = fixture_bytes("shopify", name or topic.replace("/", "__"))
    response = post_shopify(client, topic, body, SHOPIFY_SECRET, **kwargs)
    assert response.status_code == 200, response.json
    return response


def test_order_created_sends_a_thank_you_email(client, work, runtime, smtp_server):
    order = load_fixture("shopify", "orders__create")
    send(client, "orders/create")
    work()

    (message,) = smtp_server.handler.messages
    assert message["To"] == order["email"]
    assert order["customer_locale"] == "sr"  # so the mail is in Serbian
    assert message["Subject"] == f"Hvala na porudžbini {order['name']}"
    assert message["From"] == "Aftersale Demo Shop <shop@example.com>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert order["customer"]["first_name"] in text
    for item in order["line_items"]:
        assert item["title"] in text and item["title"] in html
    assert smtp_server.handler.envelopes[0].rcpt_tos == [order["email"]]

    (action,) = rows(runtime.engine, actions)
    assert action.status == "sent" and action.rule == "thank-you"
    assert action.recipient == order["email"] and action.subject == message["Subject"]
    assert action.provider_id == message["Message-ID"]
    (attempt,) = rows(runtime.engine, messages)
    assert (
        attempt.status == "sent" and attempt.channel == "email" and attempt.action_id == action.id
    )
    (delivery,) = rows(runtime.engine, deliveries)
    assert delivery.status == "processed"


def test_the_same_delivery_twice_sends_one_email(client, work, runtime, smtp_server):
    send(client, "orders/create", webhook_id="dup-1")
    send(client, "orders/create", webhook_id="dup-1")
    work()
    assert count(runtime.engine, deliveries) == 1
    assert len(smtp_server.handler.messages) == 1


def test_the_same_order_through_another_delivery_sends_one_email(
    client, work, runtime, smtp_server
):
    """A new webhook id for the same happening (e.g. a second subscription): the same body is
    stored once (its hash, per shop and topic), and the event key would dedupe it anyway."""
    send(client, "orders/create", webhook_id="a")
    send(client, "orders/create", webhook_id="b")
    work()
    assert count(runtime.engine, deliveries) == 1
    assert count(runtime.engine, events) == 1
    assert len(smtp_server.handler.messages) == 1


def test_an_action_job_run_twice_sends_once(client, work, runtime, smtp_server):
    from aftersale.workers.jobs import run_actions

    send(client, "orders/create")
    work()
    (action,) = rows(runtime.engine, actions)
    assert run_actions([action.id]) == {action.id: "not_claimed"}
    assert len(smtp_server.handler.messages) == 1


def test_an_order_without_email_is_skipped_with_a_reason(client, work, runtime, smtp_server):
    send(client, "orders/create", "orders__create__no_email")
    work()
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.skip_reason) == ("skipped", "no_recipient")
    assert smtp_server.handler.messages == []


def test_redis_unreachable_delivery_is_kept_and_swept_later(
    tmp_path, database_url, redis_url, smtp_server, rules_dir, clock
):
    from aftersale.web import create_app
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    base = dict(
        instance_path=tmp_path,
        database_url=database_url,
        shopify_api_secrets=(SHOPIFY_SECRET,),
        mail_url=smtp_server.url,
        rules_dir=rules_dir,
        secret_key="k",
        queue_prefix="outbox-test",
    )
    down = Runtime(
        Config.from_env({}, redis_url=f"redis://127.0.0.1:{free_port()}/0", **base), clock
    )
    app = create_app(runtime=down)
    response = send(app.test_client(), "orders/create")
    assert response.json["status"] == "stored"
    app.extensions["aftersale.receiver"].writer.drain()
    (delivery,) = rows(down.engine, deliveries)
    assert delivery.status == "pending"
    app.extensions["aftersale.receiver"].writer.stop()
    down.close()

    up = Runtime(Config.from_env({}, redis_url=redis_url, **base), clock)
    install(up)
    try:
        scheduler = Scheduler(up)
        assert scheduler.tick(clock.now()).deliveries_enqueued == 1
        make_worker(up).work(burst=True, logging_level="WARNING", with_scheduler=False)
        (delivery,) = rows(up.engine, deliveries)
        assert delivery.status == "processed"
        assert len(smtp_server.handler.messages) == 1
    finally:
        up.close()
        install(None)


@pytest.fixture
def wait_rules(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(
        textwrap.dedent(
            """
            - name: delivered-followup
              on: shipment.delivered
              wait: 7d
              cancel_on: [order.refunded]
              once_per: order
              category: transactional
              do:
                - email: {template: review_invite}
            """
        )
    )
    return folder


@pytest.fixture
def wait_config(config, wait_rules):
    return config.replace(rules_dir=wait_rules)


@pytest.fixture
def wait_runtime(wait_config, clock):
    rt = Runtime(wait_config, clock)
    install(rt)
    yield rt
    rt.close()
    install(None)


def test_a_seven_day_wait_is_stored_and_sent_only_when_due(wait_runtime, clock, smtp_server):
    from aftersale.web import create_app
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    delivered = load_fixture("shopify", "fulfillments__update__delivered")
    delivered_at = parse_time(delivered["updated_at"])
    clock.set(delivered_at + timedelta(minutes=1))
    app = create_app(runtime=wait_runtime)
    client = app.test_client()

    def work():
        app.extensions["aftersale.receiver"].writer.drain()
        Scheduler(wait_runtime).relay()
        make_worker(wait_runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)

    send(client, "orders/create")
    send(client, "fulfillments/create")
    send(client, "fulfillments/update", "fulfillments__update__delivered")
    work()

    (action,) = rows(wait_runtime.engine, actions)
    assert action.status == "scheduled"
    assert action.due_at == delivered_at + timedelta(days=7)

    scheduler = Scheduler(wait_runtime)
    clock.set(action.due_at - timedelta(seconds=1))
    assert scheduler.tick(clock.now()).actions_enqueued == 0
    work()
    assert smtp_server.handler.messages == []

    clock.set(action.due_at + timedelta(seconds=1))
    assert scheduler.tick(clock.now()).actions_enqueued == 1
    work()
    (message,) = smtp_server.handler.messages
    assert message["To"] == load_fixture("shopify", "orders__create")["email"]
    assert rows(wait_runtime.engine, actions)[0].status == "sent"


def test_a_refund_cancels_the_pending_follow_up(wait_runtime, clock, smtp_server):
    from aftersale.web import create_app
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    delivered = load_fixture("shopify", "fulfillments__update__delivered")
    clock.set(parse_time(delivered["updated_at"]) + timedelta(minutes=1))
    app = create_app(runtime=wait_runtime)
    client = app.test_client()
    for topic, name in [
        ("orders/create", None),
        ("fulfillments/update", "fulfillments__update__delivered"),
        ("refunds/create", None),
    ]:
        send(client, topic, name)
        app.extensions["aftersale.receiver"].writer.drain()
        Scheduler(wait_runtime).relay()  # deliveries are processed one after the other, in order
    make_worker(wait_runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)

    (action,) = rows(wait_runtime.engine, actions)
    assert (action.status, action.skip_reason) == ("skipped", "cancelled")
    clock.advance(timedelta(days=8))
    assert Scheduler(wait_runtime).tick(clock.now()).actions_enqueued == 0
    assert smtp_server.handler.messages == []
