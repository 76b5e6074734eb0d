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

from store.tables import actions, messages
from tests.action_helpers import hand_off, plant, store_event
from tests.conftest import free_port
from tests.helpers import rows
from tests.test_cli import env_for
from workers.actions import LEASE

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

        clock.set(datetime.now(UTC) + LEASE - timedelta(seconds=30))
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
