"""Consent from Shopify's consent webhooks decides marketing, newest update first.

Shopify sends ``customers_email_marketing_consent/update`` (email) and
``customers_marketing_consent/update`` (SMS); since API 2025-01 nothing else
carries consent. Each customer's record per channel (state, opt-in level, when
it changed) is kept; an update older than the stored one changes nothing, and
the next marketing send follows what is stored.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from aftersale.store.tables import actions, customer_consents, customers
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import load_fixture, post_shopify, rows
from tests.test_pipeline_parity import rules_dir  # noqa: F401  (fixture: starter + a marketing mail)

START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CUSTOMER = 7012345678901
EMAIL_TOPIC = "customers_email_marketing_consent/update"
SMS_TOPIC = "customers_marketing_consent/update"


def at(minutes: int) -> str:
    """A time ``minutes`` after START, as the payloads write it."""
    moment = START + timedelta(minutes=minutes)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def consent(client, work, clock, state: str, minutes: int, topic: str = EMAIL_TOPIC):
    """Post a consent update saying ``state`` as of START + ``minutes``."""
    name = topic.replace("/", "__")
    body = copy.deepcopy(load_fixture("shopify", name))
    key = "sms_marketing_consent" if topic == SMS_TOPIC else "email_marketing_consent"
    body[key].update(state=state, consent_updated_at=at(minutes))
    clock.set(max(clock.now(), START + timedelta(minutes=minutes, seconds=1)))
    assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
    work()


def order(client, work, clock, order_id: int):
    body = copy.deepcopy(load_fixture("shopify", "orders__create"))
    body.update(id=order_id, name=f"#{order_id}", created_at=at(0), updated_at=at(0))
    body["buyer_accepts_marketing"] = True  # the checkbox is not the consent record
    assert post_shopify(client, "orders/create", body, SHOPIFY_SECRET).status_code == 200
    work()


def offer(runtime, order_id: int):
    (action,) = [
        a
        for a in rows(runtime.engine, actions)
        if a.rule == "welcome-offer" and a.order_ref == str(order_id)
    ]
    return action


def run_due(clock, scheduler, work, days: int = 2):
    clock.set(START + timedelta(days=days))
    scheduler.tick(clock.now())
    work()


def stored(runtime, channel: str = "email"):
    (customer,) = rows(runtime.engine, customers)
    records = {r.channel: r for r in rows(runtime.engine, customer_consents)}
    return customer, records.get(channel)


def test_withdrawn_consent_skips_the_next_marketing_mail(client, work, runtime, clock, scheduler):
    clock.set(START)
    consent(client, work, clock, "subscribed", -60)
    order(client, work, clock, 7001)
    assert offer(runtime, 7001).status == "scheduled"
    consent(client, work, clock, "unsubscribed", 30)

    run_due(clock, scheduler, work)
    action = offer(runtime, 7001)
    assert (action.status, action.skip_reason) == ("skipped", "no_consent")
    customer, record = stored(runtime)
    assert customer.accepts_email_marketing is False
    assert (record.state, record.opt_in_level) == ("unsubscribed", "single_opt_in")
    assert record.consent_updated_at == START + timedelta(minutes=30)


def test_an_older_update_arriving_late_does_not_re_grant(client, work, runtime, clock, scheduler):
    clock.set(START)
    consent(client, work, clock, "unsubscribed", 30)
    consent(client, work, clock, "subscribed", -60)  # sent before, delivered after
    order(client, work, clock, 7002)  # its checkbox does not override the record either

    customer, record = stored(runtime)
    assert customer.accepts_email_marketing is False and record.state == "unsubscribed"
    run_due(clock, scheduler, work)
    action = offer(runtime, 7002)
    assert (action.status, action.skip_reason) == ("skipped", "no_consent")


def test_a_newer_grant_is_followed(client, work, runtime, clock, scheduler, smtp_server):
    clock.set(START)
    consent(client, work, clock, "unsubscribed", -60)
    order(client, work, clock, 7003)
    consent(client, work, clock, "subscribed", 45)
    run_due(clock, scheduler, work)
    assert offer(runtime, 7003).status == "sent"


def test_sms_consent_is_kept_apart_from_email(client, work, runtime, clock):
    clock.set(START)
    consent(client, work, clock, "subscribed", 10, topic=SMS_TOPIC)
    consent(client, work, clock, "unsubscribed", 20, topic=EMAIL_TOPIC)
    consent(client, work, clock, "unsubscribed", 5, topic=SMS_TOPIC)  # older: ignored

    customer, sms = stored(runtime, "sms")
    _, email = stored(runtime, "email")
    assert (customer.accepts_sms_marketing, customer.accepts_email_marketing) == (True, False)
    assert (sms.state, sms.consent_updated_at) == ("subscribed", START + timedelta(minutes=10))
    assert email.state == "unsubscribed"
    assert customer.phone == "+381641234567"


def test_the_changelog_spelling_of_the_topic_still_works(client, work, runtime, clock):
    clock.set(START)
    body = load_fixture("shopify", "customers__email_marketing_consent_update")
    body["email_marketing_consent"]["consent_updated_at"] = at(0)
    topic = "customers/email_marketing_consent_update"
    assert post_shopify(client, topic, body, SHOPIFY_SECRET).status_code == 200
    work()
    customer, record = stored(runtime)
    assert customer.accepts_email_marketing is True and record.state == "subscribed"
