"""Redis killed in the middle of a load of webhooks and restarted: nothing answered 200 is lost or doubled."""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from aftersale.store.tables import actions, deliveries, events
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, load_fixture, shopify_headers

pytestmark = pytest.mark.fault

TOTAL = 2000


def order_bodies(n: int) -> list[bytes]:
    base = load_fixture("shopify", "orders__create")
    bodies = []
    for i in range(n):
        order = copy.deepcopy(base)
        order["id"] = 9_000_000_000_000 + i
        order["name"] = f"#{50000 + i}"
        # a burst of 2,000 shoppers, as a sale brings, not one customer with 2,000 orders
        # (whose history every judgment and mail would read in full)
        order["customer"]["id"] = 8_000_000_000_000 + i
        order["customer"]["email"] = order["email"] = f"shopper{i}@example.com"
        bodies.append(json.dumps(order).encode())
    return bodies


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_redis_killed_during_load_loses_nothing(
    live_server, app, runtime, redis_server, scheduler, work, smtp_server, clock
):
    if getattr(redis_server, "proc", None) is None:
        pytest.skip("needs a private redis-server to kill")
    bodies = order_bodies(TOTAL)
    statuses: list[int] = [0] * TOTAL
    session = threading.local()

    def post(i: int) -> None:
        client = getattr(session, "client", None) or requests.Session()
        session.client = client
        headers = shopify_headers(
            "orders/create", bodies[i], SHOPIFY_SECRET, webhook_id=f"load-{i}"
        )
        statuses[i] = client.post(
            f"{live_server}/webhooks/shopify", data=bodies[i], headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(post, range(0, TOTAL // 2)))
        redis_server.stop()  # Redis dies mid-load
        list(pool.map(post, range(TOTAL // 2, 3 * TOTAL // 4)))
        redis_server.start()  # and comes back empty: every queued job is gone
        list(pool.map(post, range(3 * TOTAL // 4, TOTAL)))

    answered = [i for i, status in enumerate(statuses) if status == 200]
    assert len(answered) == TOTAL, f"non-200 answers: {sorted(set(statuses))}"
    assert app.extensions["aftersale.receiver"].writer.drain(30)
    assert count(runtime.engine, deliveries) == TOTAL
    with runtime.engine.connect() as conn:
        pending = conn.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
        ).scalar()
    assert pending > 0, "the outage should have left deliveries pending in the outbox"

    # Work off what Redis still has, then let the scheduler sweep the outbox and recover lost jobs.
    work()
    for _ in range(10):
        clock.advance(timedelta(seconds=61))
        report = scheduler.tick(clock.now())
        work()
        if not report.busy:
            break

    with runtime.engine.connect() as conn:
        by_status = dict(
            conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            ).all()
        )
    assert by_status == {"processed": TOTAL}
    assert count(runtime.engine, events) == TOTAL
    assert count(runtime.engine, actions, actions.c.status == "sent") == TOTAL
    message_ids = [m["Message-ID"] for m in smtp_server.handler.messages]
    assert len(message_ids) == TOTAL and len(set(message_ids)) == TOTAL, (
        "an email was lost or sent twice"
    )
    print(
        f"\n{TOTAL} webhooks, Redis killed after {TOTAL // 2} and restarted after {3 * TOTAL // 4}: "
        f"{pending} waited in the outbox, all processed once, {len(set(message_ids))} emails"
    )
