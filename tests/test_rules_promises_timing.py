"""Quiet hours on every path, in the recipient's time zone, and send windows (issue 22).

The shop is in Belgrade with quiet hours 21:00-08:00. Each path that makes an action
due (planning, a wait_for release or timeout, a cap deferral, a retry, a manual retry)
must land outside them, read in the recipient's zone when the order says where that is.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from aftersale.core.events import parse_time
from aftersale.rules.model import Settings
from aftersale.rules.timing import SendWindow, parse_window, recipient_zone, release_at
from aftersale.store import actions as action_store
from aftersale.store.actions import ActionStatus
from aftersale.store.tables import actions
from tests.helpers import load_fixture
from tests.test_rules_promises import ORDER, due_now, only, order, rules_folder, send

BELGRADE = ZoneInfo("Europe/Belgrade")
ORDERED_AT = parse_time(ORDER["created_at"])  # Friday 2026-11-20 16:15 in Belgrade
PAID_AT = parse_time(load_fixture("shopify", "orders__paid")["processed_at"])
SETTINGS = """
timezone: Europe/Belgrade
quiet_hours: {start: "21:00", end: "08:00"}
frequency_cap: {max: 1, per: 6h}
"""


def local(day: int, hour: int, minute: int = 0, zone=BELGRADE) -> datetime:
    """A November 2026 local time, in UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=zone).astimezone(UTC)


@pytest.fixture
def rules_dir(tmp_path, request):
    return rules_folder(tmp_path, request.param, SETTINGS)


WAIT_FOR = """
- name: after-payment
  on: order.created
  wait_for: {event: order.paid, timeout: 3d6h, on_timeout: send}
  wait: 5h
  once_per: order
  category: transactional
  quiet_hours: true
  do:
    - email: {template: thank_you}
"""


@pytest.mark.parametrize("rules_dir", [WAIT_FOR], indirect=True)
def test_a_wait_for_release_inside_quiet_hours_moves_to_their_end(client, work, runtime, clock):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    assert only(runtime).status == "waiting"
    clock.set(PAID_AT + timedelta(seconds=5))
    send(
        client, "orders/paid", {**load_fixture("shopify", "orders__paid"), "customer_locale": "en"}
    )
    work()
    released = only(runtime)
    assert (PAID_AT + timedelta(hours=5)).astimezone(BELGRADE).hour == 21  # quiet
    assert (released.status, released.due_at) == ("scheduled", local(21, 8))


@pytest.mark.parametrize("rules_dir", [WAIT_FOR], indirect=True)
def test_a_wait_for_timeout_inside_quiet_hours_is_sent_after_them(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    timeout = only(runtime).due_at
    assert timeout.astimezone(BELGRADE).time() == time(22, 15, 3)  # inside the quiet hours
    due_now(clock, scheduler, work, timeout + timedelta(seconds=1))  # timed out: scheduled
    due_now(clock, scheduler, work, timeout + timedelta(seconds=2))  # due: the worker defers
    deferred = only(runtime)
    assert (deferred.status, deferred.due_at, deferred.attempts) == ("scheduled", local(24, 8), 0)
    assert smtp_server.handler.messages == []
    due_now(clock, scheduler, work, local(24, 8, 1))
    assert only(runtime).status == "sent"


CAPPED = """
- name: first-offer
  on: order.created
  once_per: order
  category: marketing
  do:
    - email: {template: thank_you}

- name: second-offer
  on: order.created
  wait: 1h
  once_per: order
  category: marketing
  on_cap: defer
  do:
    - email: {template: cross_sell}
"""


@pytest.mark.parametrize("rules_dir", [CAPPED], indirect=True)
def test_a_cap_deferral_lands_outside_quiet_hours(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    first = only(runtime, "first-offer")
    assert first.status == "sent"
    due_now(clock, scheduler, work, ORDERED_AT + timedelta(hours=1, seconds=1))
    second = only(runtime, "second-offer")
    # the cap frees up 6h after the first mail: 22:15 in Belgrade, inside the quiet hours
    assert (first.finished_at + timedelta(hours=6)).astimezone(BELGRADE).hour == 22
    assert (second.status, second.due_at) == ("scheduled", local(21, 8))
    assert "frequency cap" in second.last_error


ABROAD = """
- name: offer
  on: order.created
  once_per: order
  category: marketing
  do:
    - email: {template: thank_you}
"""


@pytest.mark.parametrize("rules_dir", [ABROAD], indirect=True)
def test_a_recipient_in_another_time_zone_gets_their_local_window(
    client, work, runtime, clock, smtp_server
):
    clock.set(ORDERED_AT)  # 16:15 in Belgrade, but 00:15 in Tokyo
    address = {**ORDER["shipping_address"], "country": "Japan", "country_code": "JP"}
    send(client, "orders/create", order(shipping_address=address))
    work()
    offer = only(runtime)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert (offer.status, offer.due_at) == ("scheduled", local(21, 8, zone=tokyo))
    assert smtp_server.handler.messages == []


RETRIED = """
- name: offer
  on: order.created
  wait: 1h
  once_per: order
  category: marketing
  do:
    - email: {template: thank_you}
"""


@pytest.mark.parametrize("rules_dir", [RETRIED], indirect=True)
def test_a_manual_retry_inside_quiet_hours_waits_for_morning(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDERED_AT)
    send(client, "orders/create", order())
    work()
    planned = only(runtime)
    clock.set(local(20, 23))
    now = clock.now()
    with runtime.engine.begin() as conn:  # it failed on its first try (a provider outage)
        conn.execute(actions.update().where(actions.c.id == planned.id).values(status="queued"))
        action_store.start_many(conn, [planned.id], now, timedelta(minutes=5))
        action_store.transition(
            conn, planned.id, ActionStatus.RUNNING, ActionStatus.FAILED, now, last_error="outage"
        )
        assert action_store.retry(conn, [planned.id], now) == [planned.id]  # `actions retry`
    due_now(clock, scheduler, work, local(20, 23, 1))
    again = only(runtime)
    assert (again.status, again.due_at) == ("scheduled", local(21, 8))
    assert smtp_server.handler.messages == []
    due_now(clock, scheduler, work, local(21, 8, 1))
    assert only(runtime).status == "sent"


WINDOW = """
- name: weekday-morning
  on: order.created
  wait: 1d
  send_at: {local: "07:00-09:00", days: [mon, tue, wed, thu, fri]}
  once_per: order
  category: marketing
  do:
    - email: {template: thank_you}
"""


@pytest.mark.parametrize("rules_dir", [WINDOW], indirect=True)
def test_a_send_window_moves_the_action_to_the_next_slot_outside_quiet_hours(
    client, work, runtime, clock
):
    clock.set(ORDERED_AT)  # Friday; +1d is Saturday afternoon
    send(client, "orders/create", order())
    work()
    # Monday's slot opens at 07:00, inside the quiet hours until 08:00: 08:00 it is
    assert only(runtime).due_at == local(23, 8)


# -- the timing functions themselves ---------------------------------------------------------


class _Rule:
    def __init__(self, send_at=None, quiet=True):
        self.send_at, self.quiet = send_at, quiet

    def honours_quiet_hours(self):
        return self.quiet


def test_release_at_combines_wait_slot_and_quiet_hours():
    settings = Settings(timezone="Europe/Belgrade", quiet_hours=(time(21), time(8)))
    slot = parse_window("10:00-12:00", ["mon", "tue", "wed", "thu", "fri"])
    assert slot == SendWindow(time(10), time(12), frozenset(range(5)))
    rule = _Rule(slot)
    zone = "Europe/Belgrade"
    assert release_at(rule, settings, local(23, 11), zone) == local(23, 11)  # inside: as is
    assert release_at(rule, settings, local(23, 12), zone) == local(24, 10)  # closed: next day
    assert release_at(rule, settings, local(21, 9), zone) == local(23, 10)  # Saturday: Monday
    assert release_at(_Rule(), settings, local(20, 22), zone) == local(21, 8)
    assert release_at(_Rule(quiet=False), settings, local(20, 22), zone) == local(20, 22)
    assert release_at(rule, settings, local(20, 22), zone, "webhook") == local(20, 22)


def test_the_recipients_zone_comes_from_the_address_then_the_phone_then_the_shop():
    at = local(20, 12)
    assert recipient_zone({"shipping_address": {"country_code": "JP"}}, {}, "UTC", at) == (
        "Asia/Tokyo"
    )
    us = {"shipping_address": {"country_code": "US"}}
    assert recipient_zone(us, {"phone": "+14155550100"}, "Europe/Belgrade", at) == (
        "America/Los_Angeles"
    )
    assert recipient_zone(us, {}, "Europe/Belgrade", at) == "Europe/Belgrade"  # unknown where
    assert recipient_zone(us, {}, "America/Chicago", at) == "America/Chicago"
    germany = {"billing_address": {"country_code": "DE"}}  # Berlin and Busingen agree
    assert recipient_zone(germany, {}, "Asia/Tokyo", at) in ("Europe/Berlin", "Europe/Busingen")
    assert recipient_zone({}, None, "Europe/Vienna", at) == "Europe/Vienna"
    assert recipient_zone({}, {"locale": "pt-BR", "phone": "+55 11 91234 5678"}, "UTC", at) == (
        "America/Sao_Paulo"
    )  # no address: the customer's locale names the country, the phone narrows it
    assert recipient_zone({}, {"locale": "en"}, "Europe/Vienna", at) == "Europe/Vienna"


def test_bad_send_windows_are_refused_with_what_to_write():
    for text, days, expected in [
        ("25:00-26:00", None, "time of day"),
        ("12:00-10:00", None, "must end after it starts"),
        ("10:00", None, "slot like"),
        ("10:00-12:00", [], "non-empty list"),
        ("10:00-12:00", ["funday"], "unknown day"),
    ]:
        with pytest.raises(ValueError, match=expected):
            parse_window(text, days)
