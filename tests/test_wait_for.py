"""``wait_for``: a review invite waits for delivery, and still goes out if the carrier is silent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from aftersale.core.events import parse_time
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, load_fixture, post_shopify, rows

SHIPPED_AT = parse_time(load_fixture("shopify", "fulfillments__create")["created_at"])
DELIVERED_AT = parse_time(load_fixture("shopify", "fulfillments__update__delivered")["updated_at"])
RULES = """
- name: review-after-delivery
  on: fulfillment.created
  wait_for: {event: [shipment.delivered, order.delivered], timeout: 14d, on_timeout: send}
  wait: 7d
  cancel_on: [order.refunded]
  once_per: order
  category: transactional
  do:
    - email: {template: review_invite}

- name: only-if-delivered
  on: fulfillment.created
  wait_for: {event: shipment.delivered, timeout: 10d, on_timeout: skip}
  once_per: order
  category: transactional
  do:
    - email: {template: delivered}
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    return folder


def send(client, topic, name=None):
    body = fixture_bytes("shopify", name or topic.replace("/", "__"))
    assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200


def by_rule(runtime) -> dict:
    return {a.rule: a for a in rows(runtime.engine, actions)}


def test_the_invite_waits_for_delivery_then_its_own_wait(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(SHIPPED_AT)
    send(client, "orders/create")
    send(client, "fulfillments/create")
    work()
    waiting = by_rule(runtime)["review-after-delivery"]
    assert (waiting.status, waiting.due_at) == ("waiting", SHIPPED_AT + timedelta(days=14))

    clock.set(DELIVERED_AT)
    send(client, "fulfillments/update", "fulfillments__update__delivered")
    work()
    invite = by_rule(runtime)["review-after-delivery"]
    assert (invite.status, invite.due_at) == ("scheduled", DELIVERED_AT + timedelta(days=7))
    delivered_mail = by_rule(runtime)["only-if-delivered"]
    assert delivered_mail.status == "sent"  # its wait is over, and it has no wait of its own

    clock.set(DELIVERED_AT + timedelta(days=7, seconds=1))
    scheduler.tick(clock.now())
    work()
    assert by_rule(runtime)["review-after-delivery"].status == "sent"
    assert len(smtp_server.handler.messages) == 2


def test_a_silent_carrier_times_out_into_send_or_skip(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(SHIPPED_AT)
    send(client, "orders/create")
    send(client, "fulfillments/create")
    work()
    clock.set(SHIPPED_AT + timedelta(days=10, seconds=1))
    scheduler.tick(clock.now())
    skipped = by_rule(runtime)["only-if-delivered"]
    assert (skipped.status, skipped.skip_reason) == ("skipped", "timeout")
    assert by_rule(runtime)["review-after-delivery"].status == "waiting"

    clock.set(SHIPPED_AT + timedelta(days=14, seconds=1))
    scheduler.tick(clock.now())  # the timeout: due now
    scheduler.tick(clock.now())  # and handed to a worker
    work()
    assert by_rule(runtime)["review-after-delivery"].status == "sent"
    assert len(smtp_server.handler.messages) == 1


def test_a_refund_cancels_an_invite_still_waiting(client, work, runtime, clock, scheduler):
    clock.set(SHIPPED_AT)
    send(client, "orders/create")
    send(client, "fulfillments/create")
    send(client, "refunds/create")
    work()
    invite = by_rule(runtime)["review-after-delivery"]
    assert (invite.status, invite.skip_reason) == ("skipped", "cancelled")
