"""Marketing consent on WooCommerce, from the opt-in meta that checkout plugins write.

WooCommerce has no consent of its own; Mailchimp for WooCommerce writes the
checkout boxes into the order's meta (and the WordPress user's), and a shop
can name its own keys in settings.yaml. What is found lands where Shopify's
consent lands (the customer row and ``customer_consents``), so the worker's
check before sending is one path. Meta shapes: tests/fixtures/woocommerce/
SOURCES.md, "Consent and language". Everything runs for real: signed
deliveries, the receiver, an RQ worker, the scheduler, SMTP and Twilio's API
on a local HTTP server.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from werkzeug.wrappers import Response

from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.woocommerce import WooCommerceConnector
from aftersale.store.tables import actions, customer_consents, customers
from tests.helpers import FIXTURES, rows
from tests.test_woocommerce import headers_of, woo_shop  # noqa: F401  (fixture)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TWILIO = "/2010-04-01/Accounts/AC123/Messages.json"

#: a marketing mail and a marketing text a day after each order, and a transactional text
RULES = """
- name: welcome-offer
  on: order.created
  wait: 1d
  once_per: order
  category: marketing
  do:
    - email: {template: cross_sell}

- name: sms-offer
  on: order.created
  wait: 1d
  once_per: order
  category: marketing
  do:
    - sms: "{{ shop.name }}: 10% off your next order with code THANKS"

- name: signup-offer
  on: customer.created
  once_per: customer
  category: marketing
  do:
    - sms: "{{ shop.name }}: welcome! 10% off your first order with code HELLO"

- name: order-text
  on: order.created
  once_per: order
  category: transactional
  do:
    - sms: "{{ shop.name }}: we got order {{ order.name }} and are packing it."
"""


@pytest.fixture
def settings_extra() -> str:
    """Lines appended to the starter pack's settings.yaml (parametrized by tests)."""
    return ""


@pytest.fixture
def rules_dir(tmp_path, settings_extra):
    folder = tmp_path / "rules"
    shutil.copytree(EXAMPLES / "starter", folder)
    (folder / "consent.yaml").write_text(RULES)
    with (folder / "settings.yaml").open("a") as settings:
        settings.write("\n" + settings_extra)
    return folder


@pytest.fixture
def config(config, httpserver):
    """Twilio's API on the local HTTP server, so texts really go out over HTTP."""
    base = f"127.0.0.1:{httpserver.port}"
    return config.replace(sms_url=f"twilio+http://AC123:twilio-token@{base}?from=%2B15005550006")


@pytest.fixture
def twilio(httpserver):
    """Twilio accepting every text; the list of the numbers texted."""
    sent = []

    def accept(request):
        sent.append(request.form["To"])
        body = {"sid": f"SM{len(sent):032d}", "status": "queued"}
        return Response(json.dumps(body), status=201, content_type="application/json")

    httpserver.expect_request(TWILIO, method="POST").respond_with_handler(accept)
    return sent


# -- payloads, shaped as WooCommerce sends them ------------------------------------


def order_body(meta=(), *, customer_id: int = 0, **fields) -> dict:
    """The processing order of the story with plugin meta appended, as ``meta_data`` items
    ``{id, key, value}`` (the REST order keeps every key a plugin writes)."""
    body = copy.deepcopy(
        json.loads((FIXTURES / "woocommerce" / "order.created__processing.json").read_text())
    )
    for n, (key, value) in enumerate(meta):
        body["meta_data"].append({"id": 90300 + n, "key": key, "value": value})
    if customer_id:
        body["customer_id"] = customer_id
        body["_links"]["customer"] = [
            {"href": f"https://shop.example.com/wp-json/wc/v3/customers/{customer_id}"}
        ]
    body.update(fields)
    return body


def customer_body(meta=(), **fields) -> dict:
    body = copy.deepcopy(
        json.loads((FIXTURES / "woocommerce" / "customer.created.json").read_text())
    )
    for n, (key, value) in enumerate(meta):
        body["meta_data"].append({"id": 5100 + n, "key": key, "value": value})
    body.update(fields)
    return body


def post(client, work, fixture: str, body: dict) -> None:
    raw = json.dumps(body, separators=(",", ":")).encode()
    response = client.post("/webhooks/woocommerce", data=raw, headers=headers_of(fixture, raw))
    assert response.status_code == 200, response.get_data(as_text=True)
    work()


def run_waits(clock, scheduler, work, days: int = 30) -> None:
    """Let every wait run out, as days passing would."""
    clock.set(clock.now() + timedelta(days=days))
    scheduler.tick(clock.now())
    work()


def outcome(runtime, rule: str) -> tuple[str, str | None]:
    (action,) = [a for a in rows(runtime.engine, actions) if a.rule == rule]
    return action.status, action.skip_reason


def consents(runtime) -> dict:
    return {r.channel: r.state for r in rows(runtime.engine, customer_consents)}


# -- consent from each supported meta key ------------------------------------------

MAILCHIMP = "mailchimp_woocommerce_is_subscribed"
MAILCHIMP_SMS = "mailchimp_woocommerce_sms_consent_subscribed"
MAILCHIMP_SMS_CLASSIC = "mailchimp_woocommerce_sms_subscribed"


@pytest.mark.parametrize(
    ("meta", "email", "sms", "stored"),
    [
        # classic checkout, ticked: the posted "1"
        ([(MAILCHIMP, "1")], "sent", "no_consent", {"email": "subscribed"}),
        # block checkout, unticked: update_meta with false is stored as ""
        ([(MAILCHIMP, "")], "no_consent", "no_consent", {"email": "not_subscribed"}),
        # SMS box ticked (written only when ticked, with the number)
        (
            [(MAILCHIMP_SMS, "1"), ("mailchimp_woocommerce_sms_consent_phone", "+436645550199")],
            "no_consent",
            "sent",
            {"sms": "subscribed"},
        ),
        (
            [(MAILCHIMP_SMS_CLASSIC, "1"), ("mailchimp_woocommerce_sms_phone", "+436645550199")],
            "no_consent",
            "sent",
            {"sms": "subscribed"},
        ),
        (
            [(MAILCHIMP, "1"), (MAILCHIMP_SMS, "1")],
            "sent",
            "sent",
            {"email": "subscribed", "sms": "subscribed"},
        ),
    ],
    ids=["email-ticked", "email-unticked-block", "sms", "sms-classic", "both"],
)
def test_consent_from_each_mailchimp_meta_key(
    app, work, runtime, clock, scheduler, woo_shop, twilio, smtp_server, meta, email, sms, stored
):
    client = app.test_client()
    post(client, work, "order.created__processing", order_body(meta))
    run_waits(clock, scheduler, work)

    assert outcome(runtime, "welcome-offer") == (
        ("sent", None) if email == "sent" else ("skipped", "no_consent")
    )
    assert outcome(runtime, "sms-offer") == (
        ("sent", None) if sms == "sent" else ("skipped", "no_consent")
    )
    assert consents(runtime) == stored
    (customer,) = rows(runtime.engine, customers)
    assert customer.accepts_email_marketing is (
        None if "email" not in stored else stored["email"] == "subscribed"
    )
    mails = [m["Subject"] for m in smtp_server.handler.messages]
    assert len(mails) == (2 if email == "sent" else 1)  # the thank-you, and the offer if allowed


def test_no_plugin_meta_reads_as_unknown_never_as_consent(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    client = app.test_client()
    post(client, work, "order.created__processing", order_body())
    run_waits(clock, scheduler, work)

    assert outcome(runtime, "welcome-offer") == ("skipped", "no_consent")
    assert outcome(runtime, "sms-offer") == ("skipped", "no_consent")
    assert consents(runtime) == {}
    (customer,) = rows(runtime.engine, customers)
    assert (customer.accepts_email_marketing, customer.accepts_sms_marketing) == (None, None)


@pytest.mark.parametrize(
    "settings_extra",
    ["woocommerce:\n  consent_meta:\n    email: [_checkout_newsletter_optin]\n    sms: []\n"],
)
def test_a_shops_own_meta_keys_replace_the_defaults(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    client = app.test_client()
    meta = [("_checkout_newsletter_optin", "yes"), (MAILCHIMP_SMS, "1")]
    post(client, work, "order.created__processing", order_body(meta))
    run_waits(clock, scheduler, work)

    assert outcome(runtime, "welcome-offer") == ("sent", None)
    # SMS reading is turned off for this shop: Mailchimp's SMS box is not read
    assert outcome(runtime, "sms-offer") == ("skipped", "no_consent")
    assert consents(runtime) == {"email": "subscribed"}


def test_an_unsubscribe_in_the_users_meta_wins_when_newer(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    """Mailchimp's sync writes "unsubscribed" to the WordPress user; the customer webhook
    carries it (for an administrator's webhook) and, being newer than the order's ticked box,
    it stands whichever delivery arrives first."""
    client = app.test_client()
    later = customer_body(
        [(MAILCHIMP, "unsubscribed")],
        date_modified="2026-11-21T08:00:00",
        date_modified_gmt="2026-11-21T08:00:00",
    )
    post(client, work, "customer.created", later)  # arrives first, but is the newer fact
    post(client, work, "order.created__processing", order_body([(MAILCHIMP, "1")], customer_id=37))
    run_waits(clock, scheduler, work)

    assert consents(runtime) == {"email": "unsubscribed"}
    assert outcome(runtime, "welcome-offer") == ("skipped", "no_consent")


# -- the store owner's legal basis ---------------------------------------------------


@pytest.mark.parametrize("settings_extra", ["consent: existing_customers\n"])
def test_soft_opt_in_reaches_customers_who_bought(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    client = app.test_client()
    post(client, work, "order.created__processing", order_body())
    run_waits(clock, scheduler, work)

    assert outcome(runtime, "welcome-offer") == ("sent", None)
    assert outcome(runtime, "sms-offer") == ("sent", None)
    assert consents(runtime) == {}  # nothing was consented: the basis is the purchase


@pytest.mark.parametrize("settings_extra", ["consent: existing_customers\n"])
def test_soft_opt_in_stops_at_an_opt_out(app, work, runtime, clock, scheduler, woo_shop, twilio):
    client = app.test_client()
    later = customer_body(
        [(MAILCHIMP, "unsubscribed")],
        date_modified="2026-11-21T08:00:00",
        date_modified_gmt="2026-11-21T08:00:00",
    )
    post(client, work, "customer.created", later)  # arrives first, but is the newer fact
    post(client, work, "order.created__processing", order_body([(MAILCHIMP, "1")], customer_id=37))
    run_waits(clock, scheduler, work)

    assert outcome(runtime, "welcome-offer") == ("skipped", "no_consent")
    assert outcome(runtime, "sms-offer") == ("sent", None)  # the opt-out was for email only


@pytest.mark.parametrize("settings_extra", ["consent: existing_customers\n"])
def test_soft_opt_in_does_not_reach_someone_who_never_bought(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    post(app.test_client(), work, "customer.created", customer_body())
    run_waits(clock, scheduler, work)
    assert outcome(runtime, "signup-offer") == ("skipped", "no_consent")


def test_a_value_that_is_no_consent_is_unknown_and_said_so():
    meta = DeliveryMeta(
        platform="woocommerce",
        shop="shop.example.com",
        topic="order.created",
        headers={"X-WC-Webhook-ID": "12", "X-WC-Webhook-Resource": "order"},
    )
    body = order_body([(MAILCHIMP, "maybe later")])
    event, *_ = WooCommerceConnector().normalize(meta, body, OrderState()).events
    assert "accepts_email_marketing" not in event.customer
    assert "email_marketing_consent" not in event.customer
    assert any(MAILCHIMP in warning for warning in event.warnings)


# -- transactional texts ------------------------------------------------------------


def test_a_transactional_sms_needs_only_a_phone_number(
    app, work, runtime, clock, scheduler, woo_shop, twilio
):
    client = app.test_client()
    post(client, work, "order.created__processing", order_body())

    assert outcome(runtime, "order-text") == ("sent", None)
    assert twilio == ["+436645550199"]  # the billing phone, in E.164
    run_waits(clock, scheduler, work)
    assert outcome(runtime, "sms-offer") == ("skipped", "no_consent")
    assert twilio == ["+436645550199"]
