"""Sentry from a worker, against a local HTTP server standing in for Sentry.

The DSN points at pytest-httpserver; what the SDK posts (envelopes) is read
back raw, so a customer's email anywhere in it, not just in one field, fails.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid

import pytest
from werkzeug import Response

from aftersale.core import sentry
from aftersale.runtime import Runtime, install
from aftersale.store.tables import actions
from aftersale.workers.runner import run_worker
from tests.action_helpers import SHOP, hand_off, plant, store_event
from tests.helpers import load_fixture, rows

CUSTOMER_EMAIL = load_fixture("shopify", "orders__create")["email"]
CUSTOMER_PHONE = "+381641234567"


class SentryServer:
    """Envelopes the SDK sent, decompressed, as raw text and as parsed items."""

    def __init__(self, httpserver):
        self.httpserver = httpserver
        self.raw: list[str] = []
        httpserver.expect_request(re.compile(r"/api/\d+/envelope/")).respond_with_handler(
            self._receive
        )
        self.dsn = f"http://{uuid.uuid4().hex}@127.0.0.1:{httpserver.port}/42"

    def _receive(self, request):
        body = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.raw.append(body.decode())
        return Response("{}", status=200, content_type="application/json")

    def events(self) -> list[dict]:
        found = []
        for envelope in self.raw:
            lines = envelope.splitlines()
            for header, item in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(item))
        return found


@pytest.fixture
def sentry_server(httpserver):
    server = SentryServer(httpserver)
    yield server
    sentry.close()


@pytest.fixture
def sentry_runtime(config, clock, sentry_server, httpserver):
    """Mail goes through Postmark's HTTP API (the same local server answers /email)."""
    rt = Runtime(
        config.replace(
            sentry_dsn=sentry_server.dsn,
            environment="staging",
            mail_url=f"postmark+http://server-token@127.0.0.1:{httpserver.port}",
        ),
        clock,
    )
    install(rt)
    yield rt
    rt.close()
    install(None)


def test_a_dead_letter_from_a_worker_reaches_sentry_once_without_customer_data(
    sentry_runtime, sentry_server, httpserver
):
    rt = sentry_runtime
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 100, "Message": "Maintenance"}, status=503
    )
    shop_id, event_id, event = store_event(rt)
    step = ("email", {"template": "thank_you", "to": "customer"})
    ids = plant(rt, shop_id, event_id, event, [step], rule="thank-you")
    with rt.engine.begin() as conn:
        conn.execute(actions.update().values(max_attempts=1))
    hand_off(rt, ids)

    run_worker(rt, burst=True)  # as `aftersale worker` runs: Sentry on, then the jobs
    sentry.flush()

    (action,) = rows(rt.engine, actions)
    assert (action.status, action.recipient) == ("dead", CUSTOMER_EMAIL)
    (sent,) = [e for e in sentry_server.events() if "dead letter" in str(e.get("message"))]
    assert (sent["level"], sent["environment"]) == ("error", "staging")
    assert sent["release"].startswith("aftersale@")
    tags = sent["tags"]
    assert (tags["shop"], tags["rule"], tags["process"]) == (SHOP, "thank-you", "worker")
    context = sent["contexts"]["action"]
    assert (context["id"], context["attempts"], context["order"]) == (action.id, 1, event.order_ref)
    assert "503" in context["last_error"] or "Maintenance" in context["last_error"]
    everything = "".join(sentry_server.raw)
    assert CUSTOMER_EMAIL not in everything and "Petrovi" not in everything

    # reported once: running the scheduler and an idle worker again sends nothing new
    before = len(sentry_server.events())
    run_worker(rt, burst=True)
    sentry.flush()
    assert len(sentry_server.events()) == before


def test_the_scrubber_keeps_customer_data_out_of_any_event(sentry_runtime, sentry_server):
    sentry.init(sentry_runtime.config, "web")
    # deferred import: the SDK is set up by sentry.init above
    import sentry_sdk

    customer = {"email": CUSTOMER_EMAIL, "first_name": "Ana", "last_name": "Petrović"}
    address = {"address1": "Knez Mihailova 12", "city": "Beograd", "zip": "11000"}
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("customer", customer)
        scope.set_extra("shipping_address", address)
        scope.set_extra("note", f"call {CUSTOMER_PHONE} or write to {CUSTOMER_EMAIL}")
        sentry_sdk.add_breadcrumb(message=f"sent to {CUSTOMER_EMAIL}")
        try:
            raise ValueError(f"no such customer {CUSTOMER_EMAIL}")
        except ValueError as exc:
            sentry_sdk.capture_exception(exc)
    sentry.flush()

    (event,) = sentry_server.events()
    everything = "".join(sentry_server.raw)
    for value in (CUSTOMER_EMAIL, "Petrović", "Knez Mihailova", "11000", CUSTOMER_PHONE):
        assert value not in everything, value
    assert event["exception"]["values"][0]["value"] == "no such customer a***@example.com"
    assert event["extra"]["note"] == "call ***67 or write to a***@example.com"
    assert event["tags"]["process"] == "web"


def test_scrub_event_masks_text_and_keeps_shape():
    event = {
        "message": f"mail to {CUSTOMER_EMAIL} failed",
        "extra": {"numbers": [CUSTOMER_PHONE, 3], "ok": True},
    }
    assert sentry.scrub_event(event) == {
        "message": "mail to a***@example.com failed",
        "extra": {"numbers": ["***67", 3], "ok": True},
    }


def test_without_a_dsn_nothing_is_set_up(config):
    assert sentry.init(config.replace(sentry_dsn=""), "worker") is False
    assert not sentry.enabled()
