"""The recovery bound: a worker SIGKILLed mid-batch, its held sends arrive within 30 s, once.

Everything runs on the real clock, as in production: two ``aftersale worker``
subprocesses, a Scheduler looping in a thread (ticking every second) and an
aiosmtpd server that notes when each Message-ID is accepted. The server
stalls the 40th mail (its second job of 25), so the kill lands in flight
with the rest of that job claimed and held under its lease. The held
actions must run again once the short lease lapses, well inside the bound,
and each mail must reach the server exactly once.

The second test is the other side of a short lease: a send slower than the
lease is not taken over by another worker, because the living worker renews
its leases (workers/leases.py).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from contextlib import contextmanager
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from aftersale.runtime import Runtime
from aftersale.store.tables import actions, messages
from aftersale.workers.leases import LEASE
from aftersale.workers.scheduler import Scheduler
from tests.action_helpers import hand_off, plant, store_event
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.faults.test_worker_killed import start_worker
from tests.helpers import load_fixture, post_shopify, rows

pytestmark = [pytest.mark.fault, pytest.mark.slow]

#: the bound the issue sets: held sends resume within this many seconds of the kill
RECOVERY_BOUND_S = 30.0
TOTAL = 100


class TimedServer:
    """Accepts mail, noting when each Message-ID arrived; holds DATA number ``hold_at``
    until released (then refuses it), or delays it by ``delay`` seconds and accepts it."""

    def __init__(self, hold_at: int = 0, delay: float = 0.0):
        self.hold_at = hold_at
        self.delay = delay
        self.count = 0
        self.held = threading.Event()
        self.release = threading.Event()
        self.arrived: list[tuple[str, float]] = []

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        if self.count == self.hold_at:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 the client went away"
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.arrived.append((message["Message-ID"], time.monotonic()))
        return "250 2.0.0 queued"


@contextmanager
def live_scheduler(config):
    """A Scheduler on the system clock, looping in a thread as ``aftersale scheduler`` does."""
    runtime = Runtime(config)
    stop = threading.Event()
    thread = threading.Thread(
        target=Scheduler(runtime).run, args=(stop,), kwargs={"interval": 1.0}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        runtime.close()


def wait_until(predicate, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def stop(worker) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(20)
    except Exception:
        worker.kill()
        worker.wait(10)


def test_killed_workers_held_sends_arrive_within_30_s_once(config, runtime):
    handler = TimedServer(hold_at=40)
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    config = config.replace(mail_url=f"smtp://127.0.0.1:{server.port}")
    runtime.config = config
    try:
        shop_id, event_id, event = store_event(runtime)
        ids = plant(
            runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})], count=TOTAL
        )
        hand_off(runtime, ids)
        first = start_worker(config)
        try:
            assert handler.held.wait(90), first.stderr.read1().decode() if first.poll() else ""
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        killed_at = time.monotonic()
        handler.release.set()
        held = {a.id for a in rows(runtime.engine, actions) if a.status == "running"}
        assert held, "the kill should land with claimed actions held"

        with live_scheduler(config):
            second = start_worker(config)
            try:
                wait_until(lambda: len(handler.arrived) >= TOTAL, RECOVERY_BOUND_S + 30)
            finally:
                stop(second)
    finally:
        server.stop()

    arrived = dict(handler.arrived)
    assert len(handler.arrived) == len(arrived) == TOTAL, "a mail was lost or doubled"
    by_action = {int(mid.split("-")[1].split(".")[0]): at for mid, at in arrived.items()}
    assert set(by_action) == set(ids)
    recovery = max(by_action[a] for a in held) - killed_at
    assert recovery < RECOVERY_BOUND_S, f"held sends resumed after {recovery:.1f} s"
    final = rows(runtime.engine, actions)
    assert {a.status for a in final} == {"sent"}
    attempts = rows(runtime.engine, messages)
    assert sorted(m.action_id for m in attempts if m.status == "sent") == sorted(ids)
    assert {m.action_id for m in attempts if m.status == "lost"} == held
    print(
        f"\nworker SIGKILLed holding {len(held)} of {TOTAL} sends (lease {LEASE.seconds} s): "
        f"all arrived once, the last held one {recovery:.1f} s after the kill"
    )


def test_a_send_slower_than_the_lease_is_not_taken_over(config, runtime):
    slow = LEASE.total_seconds() + 6
    handler = TimedServer(delay=slow)
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    config = config.replace(mail_url=f"smtp://127.0.0.1:{server.port}")
    runtime.config = config
    try:
        shop_id, event_id, event = store_event(runtime)
        (action_id,) = plant(
            runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})]
        )
        hand_off(runtime, [action_id])
        with live_scheduler(config):
            workers = [start_worker(config), start_worker(config)]  # one idle, ready to take over
            try:
                done = wait_until(
                    lambda: rows(runtime.engine, actions)[0].status == "sent", slow + 30
                )
            finally:
                for worker in workers:
                    stop(worker)
    finally:
        server.stop()

    assert done
    assert len(handler.arrived) == 1
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.attempts) == ("sent", 1)
    assert [m.status for m in rows(runtime.engine, messages)] == ["sent"]


#: deliveries in the delivery-kill test: three jobs of DELIVERY_BATCH
DELIVERIES_TOTAL = 60


@pytest.mark.postgres_only  # a row lock holds the worker mid-job; SQLite locks the whole file
def test_killed_workers_held_deliveries_are_processed_within_30_s_once(config, runtime, client):
    """A worker SIGKILLed inside a delivery job: the job stays ``started`` in RQ for
    minutes, its remaining deliveries ``queued``. They are processed, and their thank-you
    mails arrive once each, within the bound: the scheduler sees the job's worker stop
    beating (store/heartbeats.py) and hands the rows to a new job.

    The test holds one delivery's row lock, so the worker blocks in the middle of the
    first job (four deliveries done, sixteen waiting) when it is killed."""
    from sqlalchemy import func, select, text

    from aftersale.store.tables import deliveries

    handler = TimedServer()
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    config = config.replace(mail_url=f"smtp://127.0.0.1:{server.port}")
    runtime.config = config
    order = load_fixture("shopify", "orders__create")
    for n in range(DELIVERIES_TOTAL):
        body = {**order, "id": order["id"] + n, "email": f"buyer{n}@example.com"}
        assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    assert runtime._receiver_state.writer.drain()
    (fifth,) = [r.id for r in rows(runtime.engine, deliveries, order_by=deliveries.c.id)][4:5]

    def processed() -> int:
        with runtime.engine.connect() as conn:
            done = select(func.count()).where(deliveries.c.status == "processed")
            return conn.execute(done.select_from(deliveries)).scalar_one()

    try:
        assert Scheduler(runtime).relay() == DELIVERIES_TOTAL
        with runtime.engine.connect() as lock:
            lock.execute(text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE"), {"id": fifth})
            first = start_worker(config)
            try:
                assert wait_until(lambda: processed() == 4, 60), "the worker never got going"
                time.sleep(0.5)
                assert processed() == 4, "the worker should be waiting on the fifth delivery"
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(10)
            killed_at = time.monotonic()
            lock.rollback()
        held = {r.id for r in rows(runtime.engine, deliveries) if r.status == "queued"}
        assert len(held) == DELIVERIES_TOTAL - 4

        with live_scheduler(config):
            second = start_worker(config)
            try:
                wait_until(lambda: len(handler.arrived) >= DELIVERIES_TOTAL, RECOVERY_BOUND_S + 30)
                recovery = time.monotonic() - killed_at
            finally:
                stop(second)
    finally:
        server.stop()

    assert {r.status for r in rows(runtime.engine, deliveries)} == {"processed"}
    arrived = dict(handler.arrived)
    assert len(handler.arrived) == len(arrived) == DELIVERIES_TOTAL, "a mail was lost or doubled"
    assert recovery < RECOVERY_BOUND_S, f"held deliveries done {recovery:.1f} s after the kill"
    print(
        f"\nworker SIGKILLed inside a delivery job ({len(held)} deliveries waiting): every "
        f"thank-you arrived once, the last {recovery:.1f} s after the kill"
    )
