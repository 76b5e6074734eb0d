"""A shop with marketing rules in three sub-categories, its web app and a worker, for the
preference-centre tests (tests/test_preferences.py, tests/test_preferences_browser.py).

At delivery a review invite goes out at once; a second review invite and care tips
are planned seven days later, so a choice made on the page in between must apply to
actions that are already pending.
"""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from aftersale.core.events import parse_time
from aftersale.runtime import Runtime, install
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, load_fixture, post_shopify, rows

ORDER = load_fixture("shopify", "orders__create")
SETTINGS = """
sender: "Kafeterija <prodavnica@example.com>"
reply_to: podrska@example.com
default_locale: en
shop_name: Kafeterija
storefront:
  url: https://kafeterija.example
  unsubscribe_email: odjava@example.com
"""
RULES = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do: [{email: thank_you}]

- name: shipping-update
  on: fulfillment.created
  once_per: fulfillment
  category: transactional
  do: [{email: shipping_update}]

- name: paid-offer
  on: order.paid
  once_per: order
  category: marketing
  do: [{email: winback}]

- name: review-invite
  on: shipment.delivered
  once_per: order
  category: marketing/review_requests
  do: [{email: review_invite}]

- name: review-invite-again
  on: shipment.delivered
  wait: 7d
  once_per: order
  category: marketing/review_requests
  do: [{email: review_invite}]

- name: care-tips
  on: shipment.delivered
  wait: 7d
  once_per: order
  category: marketing/care_tips
  do: [{email: care_tips}]
"""


def make_runtime(config, clock, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "settings.yaml").write_text(textwrap.dedent(SETTINGS))
    (folder / "rules.yaml").write_text(textwrap.dedent(RULES))
    delivered = load_fixture("shopify", "fulfillments__update__delivered")
    clock.set(parse_time(delivered["updated_at"]) + timedelta(minutes=1))
    rt = Runtime(config.replace(rules_dir=folder), clock)
    install(rt)
    return rt


class Shop:
    """The web app (a test client) and a burst worker on one runtime."""

    def __init__(self, runtime):
        # deferred import: the app shell is built per test, after the runtime
        from aftersale.web import create_app

        self.runtime = runtime
        self.app = create_app(runtime=runtime)
        self.web = self.app.test_client()

    def send(self, topic, name=None):
        body = fixture_bytes("shopify", name or topic.replace("/", "__"))
        assert post_shopify(self.web, topic, body, SHOPIFY_SECRET).status_code == 200
        self.work()

    def work(self):
        # deferred import: workers sit above the web layer these tests start from
        from aftersale.workers.runner import make_worker
        from aftersale.workers.scheduler import Scheduler

        self.app.extensions["aftersale.receiver"].writer.drain()
        Scheduler(self.runtime).relay()
        make_worker(self.runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)
        Scheduler(self.runtime).tick(self.runtime.clock.now())  # what has come due since
        make_worker(self.runtime).work(burst=True, logging_level="WARNING", with_scheduler=False)

    def close(self):
        self.app.extensions["aftersale.receiver"].writer.stop()


@pytest.fixture
def shop(config, clock, tmp_path):
    rt = make_runtime(config, clock, tmp_path)
    found = Shop(rt)
    yield found
    found.close()
    rt.close()
    install(None)


def by_rule(smtp_server, rule):
    found = [m for m in smtp_server.handler.messages if m["X-Aftersale-Rule"] == rule]
    assert len(found) == 1, [m["X-Aftersale-Rule"] for m in smtp_server.handler.messages]
    return found[0]


def action(runtime, rule):
    (row,) = rows(runtime.engine, actions, actions.c.rule == rule)
    return row


def preferences_url(message) -> str:
    """The preference centre's link in a sent mail's HTML footer."""
    html = message.get_body(("html",)).get_content()
    (url,) = set(re.findall(r'href="(https?://[^"]+/p/[^"]+)"', html))
    return url


def path_of(url: str) -> str:
    return urlsplit(url).path
