"""A worker process killed with SIGKILL in the middle of a send: the action completes exactly once.

The worker is a real ``python -m aftersale worker`` subprocess; the SMTP
server stalls on the first DATA it gets, so the kill lands while the mail is
in flight and unaccepted. After the lease expires the scheduler makes the
action due again, a new worker sends it, and the receiving side sees one
message with the action's Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from aftersale.store.tables import actions, messages
from aftersale.workers.actions import LEASE
from tests.action_helpers import hand_off, plant, store_event
from tests.conftest import free_port
from tests.helpers import rows
from tests.test_cli import env_for

pytestmark = [pytest.mark.fault, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


class StallOnFirstData:
    """Holds the first DATA until released, and never accepts it; accepts every later one."""

    def __init__(self):
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.accepted = []

    async def handle_DATA(self, server, session, envelope):
        if not self.stalled.is_set():
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 the client went away"
        self.accepted.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 queued"


def start_worker(config, *extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "aftersale", "worker", *extra],
        env={**os.environ, **env_for(config)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_worker_killed_mid_send_completes_exactly_once(config, runtime, clock, scheduler):
    handler = StallOnFirstData()
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

        worker = start_worker(config)
        try:
            assert handler.stalled.wait(60), worker.stderr.read1().decode() if worker.poll() else ""
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        handler.release.set()
        (action,) = rows(runtime.engine, actions)
        assert action.status == "running" and handler.accepted == []

        clock.set(datetime.now(UTC) + LEASE - timedelta(seconds=5))
        assert scheduler.tick(clock.now()).released == 0  # the lease still holds
        clock.set(datetime.now(UTC) + LEASE + timedelta(seconds=1))
        report = scheduler.tick(clock.now())
        assert (report.released, report.actions_enqueued) == (1, 1)

        again = start_worker(config, "--burst")
        _, stderr = again.communicate(timeout=120)
        assert again.returncode == 0, stderr.decode()[-2000:]
    finally:
        server.stop()

    (delivered,) = handler.accepted
    assert delivered["Message-ID"].startswith(f"<action-{action_id}.")
    (action,) = rows(runtime.engine, actions)
    assert (action.status, action.attempts) == ("sent", 2)
    assert action.provider_id == delivered["Message-ID"]
    assert [(m.attempt, m.status) for m in rows(runtime.engine, messages)] == [
        (1, "lost"),
        (2, "sent"),
    ]


class CountingServer:
    """Accepts every message, counting them by Message-ID."""

    def __init__(self):
        self.received: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(
            message_from_bytes(envelope.content, policy=policy.default)["Message-ID"]
        )
        return "250 2.0.0 queued"


def test_worker_killed_again_and_again_during_500_actions(config, runtime, clock, scheduler):
    """Kill the worker at random moments until all 500 are done: each action is sent, recorded
    sent once, and reaches the mail server; a copy can only repeat the Message-ID of an action
    whose earlier try was cut off after the server accepted it (the unavoidable at-least-once
    window between SMTP's 250 and the commit), and the test counts those."""
    import random
    import time as clock_time

    handler = CountingServer()
    server = Controller(handler, hostname="127.0.0.1", port=free_port())
    server.start()
    config = config.replace(mail_url=f"smtp://127.0.0.1:{server.port}")
    runtime.config = config
    rng = random.Random(7)
    kills = 0
    try:
        shop_id, event_id, event = store_event(runtime)
        ids = plant(
            runtime, shop_id, event_id, event, [("email", {"template": "thank_you"})], count=500
        )
        hand_off(runtime, ids)
        moment = datetime.now(UTC)
        for _ in range(6):
            worker = start_worker(config)
            clock_time.sleep(rng.uniform(1.0, 2.5))
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                kills += 1
            worker.wait(10)
            moment += LEASE + timedelta(seconds=1)  # the killed worker's leases run out
            clock.set(moment)
            scheduler.tick(clock.now())
            if all(a.status == "sent" for a in rows(runtime.engine, actions)):
                break
        for _ in range(3):  # finish without killing
            moment += LEASE + timedelta(seconds=1)
            clock.set(moment)
            scheduler.tick(clock.now())
            done = start_worker(config, "--burst")
            _, stderr = done.communicate(timeout=300)
            assert done.returncode == 0, stderr.decode()[-2000:]
    finally:
        server.stop()

    final = rows(runtime.engine, actions)
    assert len(final) == 500 and {a.status for a in final} == {"sent"}
    attempts = rows(runtime.engine, messages)
    sent_rows = [m.action_id for m in attempts if m.status == "sent"]
    assert sorted(sent_rows) == sorted(ids), "an action was recorded sent twice, or not at all"
    expected = {f"<action-{a.id}.{a.shop_id}@" for a in final}
    received = {mid.split("@")[0] + "@" for mid in handler.received}
    assert received == expected, "an action's mail never reached the server"
    interrupted = {m.action_id for m in attempts if m.status == "lost"}
    repeats = len(handler.received) - len(set(handler.received))
    repeated_ids = {
        int(mid.split("-")[1].split(".")[0])
        for mid in handler.received
        if handler.received.count(mid) > 1
    }
    assert repeated_ids <= interrupted, "a mail repeated without an interrupted try"
    print(
        f"\n500 actions, worker SIGKILLed {kills} times: all sent once in the database, "
        f"{len(interrupted)} tries cut off, {repeats} duplicate deliveries at the server"
    )
