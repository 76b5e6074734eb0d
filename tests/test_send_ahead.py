"""A job sends one mail while it prepares the next (workers/send_ahead.py).

Several orders of different customers go out in one action job through a real
SMTP server that refuses one recipient. Each accepted mail arrives once, the
refused one is recorded as failed without holding up the others,
and every log line about an action carries that action's own order and customer,
though it is recorded while the next action is being prepared.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from aftersale.core import logs
from aftersale.store.tables import actions
from aftersale.workers.runner import make_worker
from aftersale.workers.scheduler import Scheduler
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.helpers import load_fixture, post_shopify, rows

ROOT = Path(__file__).resolve().parent.parent
ORDERS = 12
REFUSED = 5  # the order whose address the server refuses
RULES = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do:
    - email: {template: thank_you}
"""


class Refusing:
    """aiosmtpd handler: refuses ``gone@`` addresses (550), keeps every accepted message."""

    def __init__(self):
        self.recipients: list[str] = []
        self.messages: list[bytes] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.recipients.extend(envelope.rcpt_tos)
        self.messages.append(envelope.content)
        return "250 2.0.0 queued"


@pytest.fixture
def smtp_server():
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.url = f"smtp://127.0.0.1:{controller.port}"
    yield controller
    controller.stop()


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(ROOT / "examples" / "starter" / "settings.yaml", folder / "settings.yaml")
    (folder / "rules.yaml").write_text(RULES)
    return folder


def order(n: int) -> dict:
    """The fixture order as the n-th order of its own customer."""
    body = copy.deepcopy(load_fixture("shopify", "orders__create"))
    address = f"gone{n}@example.com" if n == REFUSED else f"buyer{n}@example.com"
    body.update(id=6000000000000 + n, name=f"#{2000 + n}", email=address, contact_email=address)
    body["customer"].update(id=8000000000000 + n, email=address)
    return body


def test_a_job_sends_while_preparing_and_each_line_names_its_own_action(
    client, runtime, smtp_server, capfd
):
    for n in range(ORDERS):
        assert post_shopify(client, "orders/create", order(n), SHOPIFY_SECRET).status_code == 200
    assert runtime._receiver_state.writer.drain()
    capfd.readouterr()
    scheduler = Scheduler(runtime)
    scheduler.relay()
    worker = make_worker(runtime)
    worker.work(burst=True, logging_level=logs.library_level("INFO"), with_scheduler=False)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]

    done = {row.order_ref: row for row in rows(runtime.engine, actions)}
    assert len(done) == ORDERS
    refused = str(6000000000000 + REFUSED)
    assert {ref: row.status for ref, row in done.items() if row.status != "sent"} == {
        refused: "failed"
    }
    assert "550" in done[refused].last_error

    handler = smtp_server.handler
    wanted = sorted(f"buyer{n}@example.com" for n in range(ORDERS) if n != REFUSED)
    assert sorted(handler.recipients) == wanted  # each accepted mail once
    jobs = {row.job_id for row in done.values() if row.status == "sent"}
    assert len(jobs) == 1, "the orders' mails went out in one job"

    by_action = {row.id: row for row in done.values()}
    outcomes = [line for line in lines if line["event"] in ("action.sent", "action.failed")]
    assert len(outcomes) == ORDERS
    for line in outcomes:
        row = by_action[line["action_id"]]
        assert (line["order"], line["customer"]) == (row.order_ref, row.customer_ref)
        assert line["event_id"] == row.event_id
    failed = next(line for line in outcomes if line["event"] == "action.failed")
    assert failed["order"] == refused and failed["status_code"] == 550
