"""The log lines of a whole order journey: JSON, linked by ids, without secrets, greppable.

A real receiver, relay and RQ worker (run as ``aftersale worker`` runs it, with RQ's
logging at LOG_LEVEL=INFO) handle an order and its fulfilment; one rule matches, one
does not (and says why), one calls a webhook that refuses. Every line on stderr is
parsed as JSON, followed by its ids, and the README's grep and jq examples are run
against the file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from aftersale.core import logs
from aftersale.rules import verdicts
from aftersale.store import why_not
from aftersale.workers.runner import make_worker
from aftersale.workers.scheduler import Scheduler
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import DEMO_SHOP, fixture_bytes, load_fixture, post_shopify

ROOT = Path(__file__).resolve().parent.parent
ORDER = "5678901234567"
CUSTOMER = "7012345678901"
RULES = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}

- name: big-spender
  on: order.created
  if:
    - order.total_price: {gte: 100000}
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}

- name: crm-hook
  on: order.created
  once_per: order
  category: transactional
  do:
    - webhook: {url: "URL", body: {order: "{{ order.name }}"}}

- name: shipping-update
  on: fulfillment.created
  once_per: fulfillment
  category: transactional
  do:
    - email: {template: shipping_update}
"""


@pytest.fixture
def rules_dir(tmp_path, httpserver):
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "starter" / "settings.yaml", folder / "settings.yaml")
    (folder / "rules.yaml").write_text(RULES.replace("URL", httpserver.url_for("/crm")))
    return folder


def run_worker_as_in_production(runtime) -> None:
    """Relay, then a burst worker with RQ's level as ``run_worker`` sets it at INFO."""
    receiver = runtime._receiver_state
    assert receiver.writer.drain()
    Scheduler(runtime).relay()
    worker = make_worker(runtime)
    worker.work(burst=True, logging_level=logs.library_level("INFO"), with_scheduler=False)


@pytest.fixture
def story(client, runtime, capfd, httpserver, tmp_path):
    """The lines of: order created, then fulfilled, each processed and acted on."""
    httpserver.expect_request("/crm", method="POST").respond_with_data("no such list", status=400)
    capfd.readouterr()
    for topic, name in (("orders/create", "orders__create"), ("fulfillments/create", None)):
        body = fixture_bytes("shopify", name or "fulfillments__create")
        assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
        run_worker_as_in_production(runtime)
    text = capfd.readouterr().err
    path = tmp_path / "aftersale.log"
    path.write_text(text)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    return text, lines, path


def only(lines, event, **fields):
    found = [
        line
        for line in lines
        if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, f"{event} {fields}: {len(found)} lines"
    return found[0]


def test_the_lines_of_a_journey_are_json_linked_by_their_ids(story):
    text, lines, _ = story
    assert all(isinstance(line, dict) and "event" in line for line in lines)
    stored = only(lines, "delivery.stored", topic="orders/create")
    assert stored["shop"] == DEMO_SHOP and stored["platform"] == "shopify"
    delivery = stored["delivery"]

    event = only(lines, "event.stored", kind="order.created")
    links = {"delivery": delivery, "shop": DEMO_SHOP, "platform": "shopify", "order": ORDER}
    assert {k: event[k] for k in links} == links
    assert event["customer"] == CUSTOMER and event["job"]
    event_id = event["event_id"]

    matched = only(lines, "rule.matched", rule="thank-you")
    missed = only(lines, "rule.not_matched", rule="big-spender")
    for line in (matched, missed):
        assert (line["event_id"], line["order"], line["job"]) == (event_id, ORDER, event["job"])
    assert missed["check"].startswith("order.total_price gte")
    assert missed["actual"] == repr(load_fixture("shopify", "orders__create")["total_price"])

    sent = only(lines, "action.sent", rule="thank-you")
    planned = only(lines, "action.planned", action_id=sent["action_id"])
    assert (planned["event_id"], planned["order"], planned["status"]) == (event_id, ORDER, "queued")
    assert sent["event_id"] == event_id and sent["to"] == "a***@example.com"
    assert (sent["shop"], sent["order"], sent["customer"]) == (DEMO_SHOP, ORDER, CUSTOMER)
    assert sent["job"] and sent["job"] != event["job"]  # the action ran in a job of its own

    failed = only(lines, "action.failed", rule="crm-hook")
    assert failed["status_code"] == 400 and failed["order"] == ORDER

    shipped = only(lines, "action.sent", rule="shipping-update")
    assert shipped["order"] == ORDER and shipped["customer"] == CUSTOMER


def test_rq_per_job_chatter_is_off_at_info(story):
    text, lines, _ = story
    assert not [line for line in lines if line.get("logger", "").startswith("rq.")]
    assert "Job OK" not in text and "Result discarded" not in text.capitalize()


def test_no_secret_token_or_customer_detail_in_any_line(story, runtime):
    text, _, _ = story
    order = load_fixture("shopify", "orders__create")
    address = order["shipping_address"]
    forbidden = [
        SHOPIFY_SECRET,
        runtime.config.secret_key,
        runtime.config.webhook_signing_secret,
        order["email"],
        order["customer"]["phone"],
        address["address1"],
        address["phone"],
        address["last_name"],
    ]
    assert [value for value in forbidden if value and value in text] == []
    # only masked addresses (a***@); a Message-ID <action-1.1@example.com> names no one
    assert not re.search(r"(?<![<\w.+-])[\w.+-]{2,}@example\.com", text)


def test_the_readme_examples_find_the_journey(story):
    _, _, path = story
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Logs", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.strip()
        for line in section.splitlines()
        if line.strip().startswith(("grep ", "jq ")) and "aftersale.log" in line
    ]
    assert len(commands) >= 5
    for command in commands:
        if command.startswith("jq") and not shutil.which("jq"):
            pytest.fail("jq is not installed (.ci/run installs it)")
        result = subprocess.run(
            ["bash", "-c", command.replace("aftersale.log", shlex.quote(str(path)))],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and result.stdout.strip(), f"{command}: {result.stderr}"
        if command.startswith("grep"):
            for line in result.stdout.splitlines():
                json.loads(line)


def test_why_not_is_recorded_with_the_event(story, runtime):
    _, lines, _ = story
    event_id = only(lines, "event.stored", kind="order.created")["event_id"]
    with runtime.engine.connect() as conn:
        misses = why_not.for_event(conn, event_id)
    total = load_fixture("shopify", "orders__create")["total_price"]
    assert misses == [why_not.Miss("big-spender", "order.total_price gte 100000", repr(total))]


@pytest.mark.parametrize(
    ("reason", "check", "actual"),
    [
        ("order.total_price gte 100: actual '20.00'", "order.total_price gte 100", "'20.00'"),
        ("customer.email eq 'x@y.com': actual 'ana.petrovic@example.com'", None, "***"),
        ("customer.first_name eq 'Bo': actual 'Ana'", "customer.first_name eq 'Bo'", "***"),
        ("order.shipping_address.address1 exists: actual missing", None, "***"),
        ("order.note contains 'x': actual 'call +381641234567'", "order.note contains 'x'", None),
    ],
)
def test_a_miss_keeps_the_check_and_masks_customer_values(reason, check, actual):
    miss = verdicts.miss_of("r", reason)
    if check is not None:
        assert miss.check == check
    if actual is not None:
        assert miss.actual == actual
    stored = f"{miss.check} {miss.actual}"
    assert "ana.petrovic" not in stored and "Ana'" not in stored and "641234567" not in stored


def test_a_not_miss_stays_whole_with_customer_values_masked():
    reason = (
        "not (customer.email ends_with 'example.com') failed: it holds"
        " (customer.email: actual 'ana.petrovic@example.com')"
    )
    miss = verdicts.miss_of("r", reason)
    assert miss.actual is None
    assert miss.check == (
        "not (customer.email ends_with 'example.com') failed: it holds (customer.email: actual ***)"
    )


def test_a_compound_miss_stays_whole_with_customer_values_masked():
    reason = "none of: customer.email eq 'a@b.rs': actual 'ana@example.com'; order.tags contains 'vip': actual missing"
    miss = verdicts.miss_of("r", reason)
    assert miss.actual is None and miss.check.startswith("none of: customer.email")
    assert "ana@example.com" not in miss.check and "order.tags contains 'vip'" in miss.check


def test_console_is_the_default_on_a_terminal_and_coloured(tmp_path):
    master, replica = os.openpty()
    terminal = os.fdopen(replica, "w", buffering=1)
    try:
        assert logs.default_format(terminal) == "console"
        assert logs.default_format(open(os.devnull, "w")) == "json"  # noqa: SIM115
        logs.configure("INFO", "console", stream=terminal)
        logs.get_logger("tests").info("action.sent", rule="thank-you")
        terminal.flush()
        shown = os.read(master, 4096).decode()
        assert "action.sent" in shown and "\x1b[" in shown  # ANSI colours
    finally:
        logs.configure("INFO", "json")
        terminal.close()
        os.close(master)
    piped = tmp_path / "piped.log"
    with piped.open("w") as stream:
        logs.configure("INFO", "console", stream=stream)
        logs.get_logger("tests").info("action.sent", rule="thank-you")
    logs.configure("INFO", "json")
    assert "\x1b[" not in piped.read_text() and "action.sent" in piped.read_text()
