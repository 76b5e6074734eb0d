"""``mode``: what a second trigger for the same subject does while the first is pending."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest

from aftersale.core.events import parse_time
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import load_fixture, post_shopify, rows

ORDER = load_fixture("shopify", "orders__create")
ORDER_AT = parse_time(ORDER["created_at"])
RULES = """
- name: reminder-{mode}
  on: order.created
  wait: 30d
  once_per: customer
  mode: {mode}
  category: transactional
  do:
    - email: {{template: replenishment}}
"""


@pytest.fixture(params=["single", "restart", "queued"])
def mode(request):
    return request.param


@pytest.fixture
def rules_dir(tmp_path, mode):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES.format(mode=mode))
    return folder


def order(order_id: int, created=ORDER_AT) -> bytes:
    body = copy.deepcopy(ORDER)
    body["id"] = order_id
    body["name"] = f"#{order_id}"
    body["created_at"] = created.isoformat()
    return json.dumps(body).encode()


def test_a_second_order_while_the_reminder_waits(client, work, runtime, clock, mode):
    for days, order_id in ((0, 2001), (10, 2002)):
        at = ORDER_AT + timedelta(days=days)
        clock.set(at)
        response = post_shopify(client, "orders/create", order(order_id, at), SHOPIFY_SECRET)
        assert response.status_code == 200
        work()
    found = [
        (a.order_ref, a.status, a.skip_reason, a.due_at) for a in rows(runtime.engine, actions)
    ]
    first_due = ORDER_AT + timedelta(days=30)
    second_due = ORDER_AT + timedelta(days=40)
    expected = {
        "single": [("2001", "scheduled", None, first_due)],
        "restart": [
            ("2001", "skipped", "restarted", first_due),
            ("2002", "scheduled", None, second_due),
        ],
        "queued": [
            ("2001", "scheduled", None, first_due),
            ("2002", "scheduled", None, second_due),
        ],
    }[mode]
    assert found == expected


def test_after_the_reminder_went_out_once_per_customer_still_holds(
    client, work, runtime, clock, scheduler, mode
):
    clock.set(ORDER_AT)
    post_shopify(client, "orders/create", order(2001), SHOPIFY_SECRET)
    work()
    clock.set(ORDER_AT + timedelta(days=30, seconds=1))
    scheduler.tick(clock.now())
    work()
    assert [a.status for a in rows(runtime.engine, actions)] == ["sent"]
    post_shopify(client, "orders/create", order(2002), SHOPIFY_SECRET)
    work()
    assert len(rows(runtime.engine, actions)) == 1  # once per customer, whatever the mode
