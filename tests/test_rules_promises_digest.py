"""Digests (issue 22): the events of a window become one message listing them all.

Three ``fulfillment.created`` of one order within the window make one shipping mail with
three tracking numbers; a fourth after the window makes a second mail. A burst of events
from several workers loses none and lists none twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from aftersale.core.events import parse_time
from aftersale.store.tables import actions
from tests.helpers import load_fixture, rows
from tests.test_rules_promises import ORDER, due_now, order, rules_folder, send

FULFILLMENT = load_fixture("shopify", "fulfillments__create")
SHIPPED_AT = parse_time(FULFILLMENT["created_at"])
DIGEST = """
- name: shipping-update
  on: fulfillment.created
  digest: {window: 2h, key: order}
  once_per: fulfillment
  category: transactional
  do:
    - email: {template: shipping_update}
"""


@pytest.fixture
def rules_dir(tmp_path, request):
    return rules_folder(tmp_path, getattr(request, "param", DIGEST))


def parcel(n: int, after: timedelta) -> dict:
    at = (SHIPPED_AT + after).isoformat()
    number = f"JJD00{n:07d}"
    return {
        **FULFILLMENT,
        "id": FULFILLMENT["id"] + n,
        "name": f"#1042.{n}",
        "created_at": at,
        "updated_at": at,
        "tracking_number": number,
        "tracking_numbers": [number],
        "tracking_url": f"https://tracking.example/{number}",
        "tracking_urls": [f"https://tracking.example/{number}"],
    }


def ship(client, work, clock, n: int, after: timedelta) -> None:
    clock.set(SHIPPED_AT + after + timedelta(seconds=2))
    send(client, "fulfillments/create", parcel(n, after))
    work()


def test_three_parcels_in_the_window_make_one_mail_and_a_fourth_a_second(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(parse_time(ORDER["created_at"]))
    send(client, "orders/create", order())
    work()
    for n, after in [(1, timedelta(0)), (2, timedelta(minutes=40)), (3, timedelta(minutes=110))]:
        ship(client, work, clock, n, after)
    (digest,) = rows(runtime.engine, actions)
    assert digest.status == "scheduled" and digest.due_at == SHIPPED_AT + timedelta(hours=2)
    assert [e["key"] for e in digest.digest["events"]] == [
        str(FULFILLMENT["id"] + n) for n in (1, 2, 3)
    ]

    due_now(clock, scheduler, work, SHIPPED_AT + timedelta(hours=2, seconds=1))
    (mail,) = smtp_server.handler.messages
    text = mail.get_body(("plain",)).get_content()
    for n in (1, 2, 3):
        assert f"JJD00{n:07d}" in text
    html = mail.get_body(("html",)).get_content()
    assert all(f"JJD00{n:07d}" in html for n in (1, 2, 3))

    ship(client, work, clock, 4, timedelta(hours=3))
    due_now(clock, scheduler, work, SHIPPED_AT + timedelta(hours=5, seconds=1))
    assert len(smtp_server.handler.messages) == 2
    last = smtp_server.handler.messages[1].get_body(("plain",)).get_content()
    assert "JJD000000004" in last and "JJD000000001" not in last
    assert [a.status for a in rows(runtime.engine, actions)] == ["sent", "sent"]


def test_a_repeated_parcel_is_listed_once(client, work, runtime, clock, scheduler, smtp_server):
    clock.set(SHIPPED_AT)
    ship(client, work, clock, 1, timedelta(0))
    same = {
        **parcel(1, timedelta(0)),
        "updated_at": (SHIPPED_AT + timedelta(minutes=5)).isoformat(),
    }
    send(client, "fulfillments/create", same)  # the same parcel again (a new webhook id)
    work()
    ship(client, work, clock, 2, timedelta(minutes=10))
    (digest,) = rows(runtime.engine, actions)
    assert len(digest.digest["events"]) == 2


CUSTOMER_DIGEST = DIGEST.replace("key: order", "key: customer")
BURST_CUSTOMERS, BURST_PER_CUSTOMER, BURST_ORDERS = 20, 50, 5


@pytest.mark.parametrize("rules_dir", [CUSTOMER_DIGEST], indirect=True)
def test_a_burst_of_1000_digest_events_loses_and_doubles_nothing(
    client, work, runtime, clock, scheduler, smtp_server, rules_dir
):
    """1,000 parcels of 20 customers (each over 5 orders, so one digest is joined from
    several orders at once) are processed by four threads while a scheduler claims what is
    due: every tracking number is in exactly one mail."""
    from concurrent.futures import ThreadPoolExecutor

    from aftersale.store.tables import deliveries
    from aftersale.workers.processing import process_one

    clock.set(SHIPPED_AT - timedelta(hours=1))
    for c in range(BURST_CUSTOMERS):
        email = f"customer{c}@example.com"
        for k in range(BURST_ORDERS):
            customer = {**ORDER["customer"], "id": 8_000_000 + c, "email": email}
            send(
                client,
                "orders/create",
                order(id=9_000_000 + c * BURST_ORDERS + k, email=email, customer=customer),
            )
    work()
    clock.set(SHIPPED_AT + timedelta(minutes=30))
    numbers = []
    for c in range(BURST_CUSTOMERS):
        for i in range(BURST_PER_CUSTOMER):
            n = c * BURST_PER_CUSTOMER + i
            body = parcel(n + 1, timedelta(seconds=n))
            body["order_id"] = 9_000_000 + c * BURST_ORDERS + i % BURST_ORDERS
            body["email"] = f"customer{c}@example.com"
            numbers.append(body["tracking_number"])
            send(client, "fulfillments/create", body)
    runtime._receiver_state.writer.drain()
    ids = [d.id for d in rows(runtime.engine, deliveries, deliveries.c.status == "pending")]
    assert len(ids) == 1000

    def process(delivery_id):
        scheduler.tick(clock.now())  # claims interleave with the joins (nothing due yet)
        return process_one(runtime, delivery_id).status

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(process, ids)) == {"processed"}
    digests = rows(runtime.engine, actions)
    listed = [e["key"] for a in digests for e in a.digest["events"]]
    assert len(listed) == len(set(listed)) == 1000

    due_now(clock, scheduler, work, SHIPPED_AT + timedelta(hours=3))
    scheduler.tick(clock.now())
    work()
    assert {a.status for a in rows(runtime.engine, actions)} == {"sent"}
    texts = [m.get_body(("plain",)).get_content() for m in smtp_server.handler.messages]
    assert len(texts) == len(digests)
    found = [n for text in texts for n in numbers if n in text]
    assert sorted(found) == sorted(numbers)  # each number in exactly one mail
