"""Metric values after a known sequence: webhooks, events, actions, sends, and the gauges
read from the database and Redis when scraped (web /metrics and a worker's own port).

Counters live in the test process's registry and grow across tests, so each test
compares a scrape after its sequence with one before it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aftersale.runtime import Runtime
from aftersale.store import actions as action_store
from aftersale.store import deliveries as delivery_store
from aftersale.store.tables import actions
from aftersale.web import create_app
from aftersale.workers.runner import run_worker
from tests.action_helpers import hand_off, plant, store_event
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.helpers import fixture_bytes, post_shopify, shopify_headers

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scrape-token"


@pytest.fixture
def rules_dir(tmp_path):
    """Only the thank-you mail: the sequence here is about counting, not about the pack."""
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "starter" / "settings.yaml", folder / "settings.yaml")
    shutil.copy(ROOT / "examples" / "starter" / "orders.yaml", folder / "orders.yaml")
    return folder


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(page: dict, name: str, **labels) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def config(config):
    return config.replace(metrics_token=TOKEN)


def scrape(client) -> dict:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return samples(answer.get_data(as_text=True))


def test_counters_after_webhooks_processing_and_sends(client, runtime, work):
    before = scrape(client)
    body = fixture_bytes("shopify", "orders__create")
    webhook_id = "b7f3c1a2-0000-4000-8000-000000000001"
    assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id=webhook_id).json
    repeat = post_shopify(client, "orders/create", body, SHOPIFY_SECRET, webhook_id=webhook_id)
    assert repeat.json["status"] == "duplicate"
    forged = client.post(
        "/webhooks/shopify", data=body, headers=shopify_headers("orders/create", body, "wrong")
    )
    assert forged.status_code == 401
    work()
    after = scrape(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    webhook = {"platform": "shopify", "topic": "orders/create"}
    assert grew("aftersale_webhooks_total", **webhook, result="stored") == 1
    assert grew("aftersale_webhooks_total", **webhook, result="duplicate") == 1
    # a refused delivery's topic is not a label: it was never proved
    assert grew("aftersale_webhooks_total", platform="shopify", topic="", result="rejected") == 1
    assert grew("aftersale_ingest_seconds_count", platform="shopify") == 3
    assert grew("aftersale_events_total", kind="order.created") == 1
    assert grew("aftersale_actions_total", state="sent", channel="email") == 1
    assert grew("aftersale_send_seconds_count", channel="email") == 1
    assert value(after, "aftersale_queue_depth", queue="deliveries") == 0
    assert value(after, "aftersale_queue_depth", queue="actions") == 0
    assert value(after, "aftersale_oldest_pending_delivery_seconds") == 0


def test_gauges_say_what_is_waiting_now(client, runtime, clock):
    shop_id, event_id, event = store_event(runtime)
    email = ("email", {"template": "thank_you", "to": "customer"})
    plant(runtime, shop_id, event_id, event, [email], due_at=clock.now() - timedelta(minutes=5))
    queued = plant(runtime, shop_id, event_id, event, [email], rule="queued-rule", count=2)
    hand_off(runtime, queued)
    with runtime.engine.begin() as conn:
        delivery_store.insert_many(
            conn,
            [
                delivery_store.NewDelivery(
                    shop_id=shop_id,
                    topic="orders/paid",
                    dedupe_key="k-1",
                    delivery_id="w-1",
                    event_id=None,
                    api_version="2025-10",
                    triggered_at=None,
                    received_at=clock.now(),
                    headers={},
                    body=b"{}",
                )
            ],
        )
    clock.advance(timedelta(seconds=90))
    page = scrape(client)
    assert value(page, "aftersale_actions_due_not_dispatched") == 1
    assert value(page, "aftersale_oldest_pending_delivery_seconds") == 90
    assert value(page, "aftersale_queue_depth", queue="actions") == 1  # one job, two actions
    assert value(page, "aftersale_actions_dead") == 0
    assert value(page, "aftersale_processes_alive", role="worker") == 0
    last = value(page, "aftersale_shop_last_webhook_timestamp_seconds", shop=event.shop)
    assert last == (clock.now() - timedelta(seconds=90)).timestamp()


def test_metrics_are_served_only_to_the_token(config, clock):
    for token, expected in (("", {None: 404}), (TOKEN, {None: 401, "nope": 401, TOKEN: 200})):
        runtime = Runtime(config.replace(metrics_token=token), clock)
        client = create_app(runtime=runtime).test_client()
        try:
            for presented, status in expected.items():
                headers = {"Authorization": f"Bearer {presented}"} if presented else {}
                answer = client.get("/metrics", headers=headers)
                assert answer.status_code == status, (token, presented)
                assert (b"aftersale_webhooks" in answer.data) == (status == 200)
        finally:
            runtime.close()


def test_a_worker_serves_its_own_metrics_on_its_port(runtime, clock):
    shop_id, event_id, event = store_event(runtime)
    email = ("email", {"template": "thank_you", "to": "customer"})
    hand_off(runtime, plant(runtime, shop_id, event_id, event, [email], rule="port-rule"))
    port = free_port()
    run_worker(runtime, burst=True, metrics_port=port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        page = samples(answer.read().decode())
    assert value(page, "aftersale_actions_total", state="sent", channel="email") >= 1
    assert value(page, "aftersale_send_seconds_count", channel="email") >= 1


ADD_WEBHOOKS = """
from aftersale.core import metrics
metrics.WEBHOOKS.labels("shopify", "orders/paid", "stored").inc({n})
"""


def test_web_processes_are_added_up(tmp_path):
    """Multiprocess mode: two processes count, a third scrapes the sum (as /metrics does)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", ADD_WEBHOOKS.format(n=n)], env=env, check=True)
    page = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aftersale.core import metrics; print(metrics.scrape().decode())",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    labels = {"platform": "shopify", "topic": "orders/paid", "result": "stored"}
    assert value(samples(page), "aftersale_webhooks_total", **labels) == 5


def test_a_lease_run_out_with_no_attempt_left_counts_as_a_dead_letter(
    client, runtime, clock, scheduler
):
    shop_id, event_id, event = store_event(runtime)
    email = ("email", {"template": "thank_you", "to": "customer"})
    (action_id,) = plant(runtime, shop_id, event_id, event, [email], rule="lost-rule")
    with runtime.engine.begin() as conn:
        conn.execute(actions.update().values(max_attempts=1))
        claimed = action_store.start_many(conn, [action_id], clock.now(), timedelta(minutes=5))
    assert list(claimed) == [action_id]  # a worker took it, then died
    before = scrape(client)
    clock.advance(timedelta(minutes=6))
    scheduler.tick(clock.now())
    after = scrape(client)
    grew = value(after, "aftersale_dead_letters_total", channel="email") - value(
        before, "aftersale_dead_letters_total", channel="email"
    )
    assert grew == 1
    assert value(after, "aftersale_actions_dead") == 1
