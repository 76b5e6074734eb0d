"""A second scheduler started by mistake doubles nothing.

Two Scheduler instances, each with its own Runtime (its own engine and Redis
connections, as two processes would have), tick at the same moments from two
threads over one burst: pending deliveries to relay, due actions to dispatch,
actions whose worker died (expired leases) to release, and a shop due a
reconcile run and a model refresh. Small batches make the two interleave many times. Afterwards
every delivery and every action sits in exactly one RQ job, every lost
attempt is recorded once, and the shop got one reconcile run and one refresh.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from aftersale.runtime import Runtime
from aftersale.store import actions as action_store
from aftersale.store.queues import ACTIONS, DELIVERIES
from aftersale.store.tables import actions, messages
from aftersale.workers.leases import LEASE
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import configure_shop, plant, store_event
from tests.conftest import SHOPIFY_SECRET
from tests.faults.test_redis_outage import order_bodies
from tests.helpers import install_shop, rows, shopify_headers

pytestmark = pytest.mark.fault

DELIVERIES_N = 120
DUE_N = 600
DIED_N = 60
TICKS = 4


def store_deliveries(client, app, n: int) -> None:
    for i, body in enumerate(order_bodies(n)):
        headers = shopify_headers("orders/create", body, SHOPIFY_SECRET, webhook_id=f"two-{i}")
        assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    assert app.extensions["aftersale.receiver"].writer.drain(30)


def jobs_by_function(runtime) -> dict[str, list]:
    """{function name: [args of each job]} over both RQ queues."""
    found: dict[str, list] = {}
    for name in (DELIVERIES, ACTIONS):
        for job in runtime.queue(name).jobs:
            found.setdefault(job.func_name, []).append(job.args)
    return found


def test_two_schedulers_over_a_burst_double_nothing(app, client, runtime, config, clock):
    shop_id = install_shop(runtime)
    configure_shop(runtime, shop_id, credentials={"access_token": "shpat_test"})
    store_deliveries(client, app, DELIVERIES_N)
    _, event_id, event = store_event(runtime)
    step = [("email", {"template": "thank_you"})]
    later = clock.now() + timedelta(seconds=1)  # scheduled, for the schedulers to claim
    due = plant(runtime, shop_id, event_id, event, step, count=DUE_N, rule="due", due_at=later)
    died = plant(runtime, shop_id, event_id, event, step, count=DIED_N, rule="died")
    with runtime.engine.begin() as conn:  # a worker claimed these, then died
        conn.execute(update(actions).where(actions.c.id.in_(died)).values(status="queued"))
        assert len(action_store.start_many(conn, died, clock.now(), LEASE)) == DIED_N

    now = clock.now() + LEASE + timedelta(seconds=1)
    runtimes = [Runtime(config, clock), Runtime(config, clock)]
    schedulers = [Scheduler(rt, batch=25) for rt in runtimes]
    start = threading.Barrier(2)
    errors: list[str] = []

    def run(scheduler: Scheduler) -> None:
        start.wait()
        for tick in range(TICKS):
            errors.extend(scheduler.tick(now + timedelta(seconds=tick)).errors)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for rt in runtimes:
            rt.close()
    assert errors == []

    jobs = jobs_by_function(runtime)
    relayed = Counter(
        i for (ids,) in jobs["aftersale.workers.jobs.process_deliveries"] for i in ids
    )
    assert len(relayed) == DELIVERIES_N and set(relayed.values()) == {1}
    dispatched = Counter(i for (ids,) in jobs["aftersale.workers.jobs.run_actions"] for i in ids)
    assert set(dispatched) == set(due) | set(died), "an action was not dispatched"
    assert set(dispatched.values()) == {1}, "an action was dispatched twice"
    reconciles = Counter(args for args in jobs["aftersale.reconcile_jobs.reconcile_job"])
    assert reconciles == {(shop_id,): 1}
    refreshes = Counter(args for args in jobs["aftersale.workers.recommend_model.refresh_job"])
    assert refreshes == {(shop_id,): 1}
    lost = Counter(m.action_id for m in rows(runtime.engine, messages) if m.status == "lost")
    assert set(lost) == set(died) and set(lost.values()) == {1}
    assert {a.status for a in rows(runtime.engine, actions)} == {"queued"}
