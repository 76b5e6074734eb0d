"""Signed links end to end: a real mail goes out over SMTP, its links are followed in the web app.

Unsubscribe (RFC 8058): GET asks, POST unsubscribes at once; afterwards
marketing actions are skipped as ``suppressed`` while shipping updates still
go out. A review click is recorded and cancels the pending reminder through
the rule's ``cancel_on``. Headers: List-Unsubscribe on marketing mail only.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from aftersale.core.events import parse_time
from aftersale.runtime import Runtime, install
from aftersale.store.messages import address_hash
from aftersale.store.tables import actions, events, link_clicks, suppressions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, load_fixture, post_shopify, rows

ORDER = load_fixture("shopify", "orders__create")
SETTINGS = """
sender: "Kafeterija <prodavnica@example.com>"
reply_to: podrska@example.com
default_locale: en
shop_name: Kafeterija
shop_name_by_language: {ru: Кафетерия}  # its Russian customers read the name in Cyrillic
storefront:
  url: https://kafeterija.example
  unsubscribe_email: odjava@example.com
  help_url: "{shop_url}/pages/kontakt?order={order_name}&email={email}"
  products:
    CARE-KIT-01: {review_url: "https://kafeterija.example/products/care-kit#judgeme"}
"""
RULES = """
- name: thank-you
  on: order.created
  once_per: order
  category: transactional
  do: [{email: thank_you}]

- name: welcome-offer
  on: order.created
  once_per: order
  category: marketing
  do: [{email: cross_sell}]

- name: paid-offer
  on: order.paid
  once_per: order
  category: marketing
  do: [{email: winback}]

- name: shipping-update
  on: fulfillment.created
  once_per: fulfillment
  category: transactional
  do: [{email: shipping_update}]

- name: review-invite
  on: shipment.delivered
  once_per: order
  category: marketing
  do: [{email: review_invite}]

- name: review-reminder
  on: shipment.delivered
  wait: 7d
  cancel_on: [link.review_clicked, link.help_clicked, order.refunded]
  once_per: order
  category: marketing
  do: [{email: review_reminder}]
"""


@pytest.fixture
def shop_runtime(config, clock, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "settings.yaml").write_text(textwrap.dedent(SETTINGS))
    (folder / "rules.yaml").write_text(textwrap.dedent(RULES))
    delivered = load_fixture("shopify", "fulfillments__update__delivered")
    clock.set(parse_time(delivered["updated_at"]) + timedelta(minutes=1))
    rt = Runtime(config.replace(rules_dir=folder), clock)
    install(rt)
    yield rt
    rt.close()
    install(None)


@pytest.fixture
def shop(shop_runtime):
    """A web app and a worker on the runtime; ``shop.send(topic, fixture)`` delivers and works."""
    from aftersale.web import create_app
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    app = create_app(runtime=shop_runtime)
    client = app.test_client()

    class Shop:
        runtime = shop_runtime
        web = client

        def send(self, topic, name=None):
            body = fixture_bytes("shopify", name or topic.replace("/", "__"))
            assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
            self.work()

        def work(self):
            app.extensions["aftersale.receiver"].writer.drain()
            Scheduler(shop_runtime).relay()
            make_worker(shop_runtime).work(
                burst=True, logging_level="WARNING", with_scheduler=False
            )

    yield Shop()
    app.extensions["aftersale.receiver"].writer.stop()


def by_rule(smtp_server, rule):
    found = [m for m in smtp_server.handler.messages if m["X-Aftersale-Rule"] == rule]
    assert len(found) == 1, [m["X-Aftersale-Rule"] for m in smtp_server.handler.messages]
    return found[0]


def action(runtime, rule):
    (row,) = rows(runtime.engine, actions, actions.c.rule == rule)
    return row


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_marketing_mail_carries_one_click_headers_and_transactional_mail_does_not(
    shop, smtp_server
):
    shop.send("orders/create")
    marketing = by_rule(smtp_server, "welcome-offer")
    transactional = by_rule(smtp_server, "thank-you")

    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = [u.strip(" <>") for u in marketing["List-Unsubscribe"].split(",")]
    assert https.startswith(shop.runtime.config.public_url + "/u/")
    assert mailto.startswith("mailto:odjava@example.com?subject=unsubscribe%20")
    assert "=?" not in str(marketing["List-Unsubscribe"])  # a link, not an encoded word
    assert transactional["List-Unsubscribe"] is None
    assert transactional["List-Unsubscribe-Post"] is None

    for message in (marketing, transactional):
        assert message.get_body(("plain",)) is not None  # always a text part
        html = message.get_body(("html",)).get_content()
        assert 'style="' in html  # CSS inlined for mail clients
        assert message["Content-Language"] == "sr"


def test_one_click_post_unsubscribes_then_marketing_is_suppressed_and_shipping_still_sent(
    shop, smtp_server
):
    shop.send("orders/create")
    marketing = by_rule(smtp_server, "welcome-offer")
    url = marketing["List-Unsubscribe"].split(",")[0].strip(" <>")

    page = shop.web.get(path_of(url))  # a mail scanner following the link changes nothing
    assert page.status_code == 200 and "a***@example.com" in page.text
    assert rows(shop.runtime.engine, suppressions) == []

    # What Gmail sends: a POST with this body, no cookies, no second step.
    answer = shop.web.post(
        path_of(url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200 and "Odjavljeni ste" in answer.text
    (suppression,) = rows(shop.runtime.engine, suppressions)
    assert suppression.address == address_hash(shop.runtime.config.secret_key, ORDER["email"])
    assert suppression.reason == "unsubscribed" and suppression.channel == "email"
    assert shop.web.post(path_of(url)).status_code == 200  # again: still fine, one row
    assert len(rows(shop.runtime.engine, suppressions)) == 1

    shop.send("orders/paid")
    paid_offer = action(shop.runtime, "paid-offer")
    assert (paid_offer.status, paid_offer.skip_reason) == ("skipped", "suppressed")

    shop.send("fulfillments/create")
    assert action(shop.runtime, "shipping-update").status == "sent"
    assert by_rule(smtp_server, "shipping-update")["To"] == ORDER["email"]
    kinds = [c.kind for c in rows(shop.runtime.engine, link_clicks)]
    assert kinds.count("unsubscribe") == 2


def test_a_review_click_is_recorded_redirects_and_cancels_the_reminder(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    invite = by_rule(smtp_server, "review-invite")
    assert action(shop.runtime, "review-reminder").status == "scheduled"

    text = invite.get_body(("plain",)).get_content()
    review_urls = re.findall(r"https?://\S+/r/\S+", text)
    assert len(review_urls) == len(ORDER["line_items"])
    answer = shop.web.get(path_of(review_urls[0]))
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://kafeterija.example/products/care-kit#judgeme"
    second = shop.web.get(path_of(review_urls[1]))  # no per-product URL: the platform default
    assert second.headers["Location"] == (
        "https://kafeterija.example/products/merino-wool-socks#reviews"
    )

    reminder = action(shop.runtime, "review-reminder")
    assert (reminder.status, reminder.skip_reason) == ("skipped", "cancelled")
    assert reminder.last_error == "cancelled by link.review_clicked"
    (clicked,) = rows(shop.runtime.engine, events, events.c.kind == "link.review_clicked")
    assert clicked.order_ref == str(ORDER["id"])  # one event, though two links were clicked
    clicks = rows(shop.runtime.engine, link_clicks)
    assert [c.kind for c in clicks] == ["review", "review"]
    assert clicks[0].action_id == action(shop.runtime, "review-invite").id

    shop.runtime.clock.advance(timedelta(days=8))
    shop.work()
    assert (
        len([m for m in smtp_server.handler.messages if "reminder" in m["X-Aftersale-Rule"]]) == 0
    )


def test_help_link_goes_to_support_with_the_order_filled_in(shop, smtp_server):
    shop.send("orders/create")
    shop.send("fulfillments/update", "fulfillments__update__delivered")
    text = by_rule(smtp_server, "review-invite").get_body(("plain",)).get_content()
    (help_url,) = re.findall(r"https?://\S+/h/\S+", text)
    answer = shop.web.get(path_of(help_url))
    assert answer.status_code == 302
    assert answer.headers["Location"] == (
        "https://kafeterija.example/pages/kontakt?order=%231042&email=ana.petrovic%40example.com"
    )
    reminder = action(shop.runtime, "review-reminder")
    assert reminder.last_error == "cancelled by link.help_clicked"


def test_tampered_and_expired_links_get_a_clear_400_page(shop, smtp_server):
    shop.send("orders/create")
    url = by_rule(smtp_server, "welcome-offer")["List-Unsubscribe"].split(",")[0].strip(" <>")
    path = path_of(url)

    tampered = path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")
    for method in (shop.web.get, shop.web.post):
        answer = method(tampered)
        assert answer.status_code == 400
        assert "Ovaj link ne radi" in answer.text  # in the language the mail was in
    assert shop.web.get("/r/not-a-token").status_code == 400
    assert "This link does not work" in shop.web.get("/h/garbage").text

    shop.runtime.clock.advance(timedelta(days=800))
    expired = shop.web.post(path)
    assert expired.status_code == 400 and "istekao" in expired.text
    assert rows(shop.runtime.engine, suppressions) == []


def test_rotating_a_shops_link_key_keeps_the_last_generation_working(
    shop, smtp_server, cli_runner, monkeypatch
):
    from aftersale.cli import Context, build

    shop.send("orders/create")
    url = by_rule(smtp_server, "welcome-offer")["List-Unsubscribe"].split(",")[0].strip(" <>")
    context = Context()
    context._config, context._runtime = shop.runtime.config, shop.runtime

    def rotate():
        args = ["links", "rotate-key", "--shop", "aftersale-demo.myshopify.com"]
        result = cli_runner.invoke(build(), args, obj=context)
        assert result.exit_code == 0, result.output
        return result.output

    assert "key version 2" in rotate()
    assert shop.web.get(path_of(url)).status_code == 200  # the previous version still works
    assert "key version 3" in rotate()
    assert shop.web.get(path_of(url)).status_code == 400  # rotated twice: revoked
    missing = cli_runner.invoke(build(), ["links", "rotate-key", "--shop", "x"], obj=context)
    assert missing.exit_code == 1 and "no shop" in missing.output


def test_the_shops_russian_name_in_russian_mail_and_on_the_pages_it_links_to(shop, smtp_server):
    body = json.dumps({**ORDER, "customer_locale": "ru"}).encode()
    assert post_shopify(shop.web, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    shop.work()
    mail = by_rule(smtp_server, "welcome-offer")
    assert mail["Content-Language"] == "ru"
    for part in ("plain", "html"):
        content = mail.get_body((part,)).get_content()
        assert "Кафетерия" in content and "Kafeterija" not in content
    page = shop.web.get(path_of(mail["List-Unsubscribe"].split(",")[0].strip(" <>")))
    assert page.status_code == 200
    assert "Кафетерия" in page.text and "Kafeterija" not in page.text
    preferences = re.search(r"https?://\S+/p/[\w.-]+", mail.get_body(("plain",)).get_content())
    centre = shop.web.get(path_of(preferences.group(0)))
    assert centre.status_code == 200 and "Кафетерия" in centre.text
