"""Heartbeats: a real ``aftersale worker`` process beats; killed, its heartbeat goes stale.
``/readyz`` (with its token) and ``aftersale status`` report what beats.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aftersale.cli import build
from aftersale.store import heartbeats
from aftersale.workers.scheduler import Scheduler
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import DEMO_SHOP, fixture_bytes, post_shopify
from tests.test_cli import env_for

ROOT = Path(__file__).resolve().parent.parent
BEAT = 0.5  # HEARTBEAT_SECONDS here: the heartbeat expires 1.5 s after the last beat


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "starter" / "settings.yaml", folder / "settings.yaml")
    shutil.copy(ROOT / "examples" / "starter" / "orders.yaml", folder / "orders.yaml")
    return folder


@pytest.fixture
def config(config):
    return config.replace(heartbeat_seconds=BEAT, readyz_token="ops-token")


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def readyz(client) -> dict:
    return client.get("/readyz", headers={"Authorization": "Bearer ops-token"}).json["checks"]


@pytest.fixture
def worker_process(config):
    env = {
        **os.environ,
        **env_for(config),
        "HEARTBEAT_SECONDS": str(BEAT),
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "aftersale", "worker", "--name", "beating"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stderr.close()


def test_a_killed_worker_goes_stale_and_readyz_says_so(client, runtime, worker_process):
    def names():
        return [beat.name for beat in heartbeats.alive(runtime)["worker"]]

    alive = wait_for(lambda: names() == ["beating"] or worker_process.poll() is not None)
    assert alive and worker_process.poll() is None, worker_process.stderr.read().decode()[-2000:]
    (beat,) = heartbeats.alive(runtime)["worker"]
    assert beat.pid == worker_process.pid
    assert readyz(client)["worker"] == "ok"
    time.sleep(BEAT * 4)  # it keeps beating past its first time-to-live
    assert names() == ["beating"]

    worker_process.send_signal(signal.SIGKILL)  # no clean exit: only the TTL can tell
    worker_process.wait()
    assert names() == ["beating"]  # not at once...
    assert wait_for(lambda: names() == [], timeout=BEAT * 3 + 2)  # ...but within its TTL
    checks = readyz(client)
    assert (checks["worker"], checks["database"]) == ("down", "ok")
    assert client.get("/readyz").status_code == 200  # webhooks are still taken


def test_the_scheduler_beats_from_its_loop_and_says_goodbye(runtime):
    scheduler = Scheduler(runtime)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop, 0.1), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: heartbeats.alive(runtime)["scheduler"], timeout=10)
        (beat,) = heartbeats.alive(runtime)["scheduler"]
        assert (beat.name, beat.pid) == (scheduler.name, os.getpid())
    finally:
        stop.set()
        thread.join(timeout=10)
    assert heartbeats.alive(runtime)["scheduler"] == []  # a clean stop removes it at once


def test_status_shows_processes_queues_and_each_shop(client, runtime, work, cli_runner, config):
    body = fixture_bytes("shopify", "orders__create")
    assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    work()
    heartbeats.beat(runtime, "scheduler", "sched-1", 30)
    result = cli_runner.invoke(build(), ["status"], env={**env_for(config), "COLUMNS": "200"})
    out = result.output
    assert result.exit_code == 1, out  # no worker alive: a script can tell
    for expected in ("workers alive", "0", "schedulers alive", "sched-1", "queue deliveries"):
        assert expected in out, out
    (shop_line,) = [line for line in out.splitlines() if DEMO_SHOP in line]
    cells = [cell.strip() for cell in shop_line.strip("│ ").split("│")]
    assert cells[:3] == [DEMO_SHOP, "shopify", "active"]
    assert cells[3] == runtime.clock.now().strftime("%Y-%m-%d %H:%M:%S")  # the last webhook
    assert cells[4:] == ["0", "0", "0", "0", "never"]  # nothing pending, due, failed, dead;
    # and no reconcile run yet (tests/test_reconcile.py shows one)
    heartbeats.beat(runtime, "worker", "w-1", 30)
    again = cli_runner.invoke(build(), ["status"], env={**env_for(config), "COLUMNS": "200"})
    assert again.exit_code == 0, again.output
