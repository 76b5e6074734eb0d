"""Timing and policy keys of the rules language, end to end on real services where they act.

``wait: {until, offset}``, ``late: {skip_after}``, ``once_per: {customer: 30d}``,
quiet hours and the marketing frequency cap, and ``order.delivered`` for split
shipments.
"""

from __future__ import annotations

import copy
import json
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.shopify import ShopifyConnector
from aftersale.core.events import Event, parse_time
from aftersale.rules import RulesInvalid
from aftersale.rules.engine import after_quiet_hours, plan
from aftersale.rules.loader import load_rules
from aftersale.rules.model import Settings
from aftersale.store.tables import actions
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, load_fixture, post_shopify, rows

ORDER_AT = parse_time(load_fixture("shopify", "orders__create")["created_at"])
RULES = """
- name: thanks
  on: order.created
  category: transactional
  late: {skip_after: 2h}
  wait: 1h
  do:
    - email: {template: thank_you}

- name: monthly-note
  on: order.created
  category: transactional
  once_per: {customer: 30d}
  do:
    - email: {template: thank_you}

- name: offer-one
  on: order.paid
  category: marketing
  once_per: order
  do:
    - email: {template: cross_sell}

- name: offer-two
  on: order.paid
  category: marketing
  once_per: order
  on_cap: defer
  do:
    - email: {template: care_tips}
"""
SETTINGS = """
sender: "Demo <shop@example.com>"
default_locale: en
timezone: Europe/Belgrade
frequency_cap: {max: 1, per: 7d}
"""


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    (folder / "settings.yaml").write_text(SETTINGS)
    return folder


def send(client, topic, name=None, body=None, **kwargs):
    raw = body if body is not None else fixture_bytes("shopify", name or topic.replace("/", "__"))
    response = post_shopify(client, topic, raw, SHOPIFY_SECRET, **kwargs)
    assert response.status_code == 200, response.json
    return response


def order_body(**changes) -> bytes:
    order = copy.deepcopy(load_fixture("shopify", "orders__create"))
    order.update(changes)
    return json.dumps(order).encode()


# -- late: {skip_after} ------------------------------------------------------------


def test_an_action_run_past_its_deadline_is_skipped_as_late(
    client, work, runtime, clock, scheduler, smtp_server
):
    clock.set(ORDER_AT)
    send(client, "orders/create")
    work()
    thanks = next(a for a in rows(runtime.engine, actions) if a.rule == "thanks")
    assert thanks.due_at == ORDER_AT + timedelta(hours=1)
    assert thanks.deadline_at == ORDER_AT + timedelta(hours=3)

    clock.set(ORDER_AT + timedelta(hours=5))  # the system was down for hours
    scheduler.tick(clock.now())
    work()
    thanks = next(a for a in rows(runtime.engine, actions) if a.rule == "thanks")
    assert (thanks.status, thanks.skip_reason) == ("skipped", "late")
    sent = [a for a in rows(runtime.engine, actions) if a.status == "sent"]
    assert [a.rule for a in sent] == ["monthly-note"]  # only the mail without a deadline
    assert len(smtp_server.handler.messages) == 1


# -- once_per with a window -------------------------------------------------------------


def test_once_per_customer_within_a_window(client, work, runtime, clock):
    for days, order_id in ((0, 5678901234567), (10, 5678901234999), (31, 5678901235000)):
        clock.set(ORDER_AT + timedelta(days=days))
        send(client, "orders/create", body=order_body(id=order_id, name=f"#{order_id}"))
        work()
    notes = [a for a in rows(runtime.engine, actions) if a.rule == "monthly-note"]
    assert [a.order_ref for a in notes] == ["5678901234567", "5678901235000"]


# -- marketing frequency cap --------------------------------------------------------


def test_the_frequency_cap_skips_or_defers_the_second_marketing_mail(
    client, work, runtime, clock, smtp_server
):
    clock.set(ORDER_AT + timedelta(hours=1))
    send(client, "orders/create")
    send(client, "orders/paid")
    work()
    offers = {a.rule: a for a in rows(runtime.engine, actions) if a.rule.startswith("offer")}
    sent = [a for a in offers.values() if a.status == "sent"]
    assert len(sent) == 1  # at most one marketing mail per 7 days
    other = next(a for a in offers.values() if a.status != "sent")
    if other.rule == "offer-one":
        assert (other.status, other.skip_reason) == ("skipped", "capped")
    else:  # on_cap: defer -> back to scheduled, due when the first leaves the window
        assert other.status == "scheduled"
        assert other.due_at == sent[0].finished_at + timedelta(days=7)
    sent_mails = [a for a in rows(runtime.engine, actions) if a.status == "sent"]
    assert len(smtp_server.handler.messages) == len(sent_mails)


# -- wait until a field, and quiet hours (the engine alone) ----------------------------


def rules_from(tmp_path, text: str, settings: str = ""):
    (tmp_path / "r.yaml").write_text(textwrap.dedent(text))
    if settings:
        (tmp_path / "settings.yaml").write_text(textwrap.dedent(settings))
    return load_rules(tmp_path)


def order_event(occurred: datetime, **order) -> Event:
    return Event(
        kind="order.paid",
        shop="s.myshopify.com",
        key="1",
        occurred_at=occurred,
        order={"id": "1", **order},
        customer={"id": "c1"},
    )


def test_wait_until_a_field_plus_an_offset_falls_back_to_the_event_time(tmp_path):
    ruleset = rules_from(
        tmp_path,
        """
        - name: replenish
          on: order.paid
          category: transactional
          wait: {until: order.created_at, offset: 30d}
          do:
            - note_order: refill
        """,
    )
    paid = datetime(2026, 3, 2, 12, tzinfo=UTC)
    (planned,) = plan(ruleset, order_event(paid, created_at="2026-03-01T08:00:00Z"), paid)
    assert planned.due_at == datetime(2026, 3, 31, 8, tzinfo=UTC)
    (planned,) = plan(ruleset, order_event(paid), paid)  # no created_at: from the event
    assert planned.due_at == paid + timedelta(days=30)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-06-10 22:30", "2026-06-11 08:00"),  # evening: next morning
        ("2026-06-11 03:10", "2026-06-11 08:00"),  # night: same morning
        ("2026-06-11 08:00", "2026-06-11 08:00"),  # the end is allowed
        ("2026-06-11 14:00", "2026-06-11 14:00"),  # daytime: unchanged
        ("2026-12-31 23:59", "2027-01-01 08:00"),  # across the year, winter time
    ],
)
def test_quiet_hours_move_a_due_time_to_the_next_allowed_hour_in_the_shop_zone(local, expected):
    from datetime import time
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Belgrade")
    settings = Settings(timezone="Europe/Belgrade", quiet_hours=(time(21), time(8)))
    moment = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    shifted = after_quiet_hours(moment.astimezone(UTC), settings).astimezone(zone)
    assert shifted.strftime("%Y-%m-%d %H:%M") == expected


def test_quiet_hours_apply_to_marketing_messages_unless_a_rule_says_otherwise(tmp_path):
    ruleset = rules_from(
        tmp_path,
        """
        - name: offer
          on: order.paid
          category: marketing
          do:
            - email: {template: cross_sell}
            - tag_order: [offered]
        - name: receipt
          on: order.paid
          category: transactional
          do:
            - email: {template: thank_you}
        - name: receipt-polite
          on: order.paid
          category: transactional
          quiet_hours: true
          do:
            - email: {template: thank_you}
        """,
        """
        timezone: UTC
        quiet_hours: {start: "21:00", end: "08:00"}
        """,
    )
    late = datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    due = {(p.rule.name, p.step.type): p.due_at for p in plan(ruleset, order_event(late), late)}
    morning = datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    assert due == {
        ("offer", "email"): morning,
        ("offer", "tag_order"): late,  # not a message: no reason to wait
        ("receipt", "email"): late,
        ("receipt-polite", "email"): morning,
    }


# -- order.delivered ---------------------------------------------------------------


def shopify_meta(topic: str) -> DeliveryMeta:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    return DeliveryMeta(platform="shopify", shop="s.myshopify.com", topic=topic, received_at=now)


def test_a_split_shipment_gives_one_order_delivered_when_the_last_parcel_arrives():
    connector = ShopifyConnector()
    state = OrderState()

    def deliver(topic, payload):
        nonlocal state
        result = connector.normalize(shopify_meta(topic), payload, state)
        state = result.state or state
        return [e.kind for e in result.events]

    order = load_fixture("shopify", "orders__create")
    deliver("orders/create", order)
    first = load_fixture("shopify", "fulfillments__create")
    second = {**first, "id": first["id"] + 1, "name": first["name"] + "-2"}
    deliver("fulfillments/create", first)
    deliver("fulfillments/create", second)
    delivered = load_fixture("shopify", "fulfillments__update__delivered")
    assert deliver("fulfillments/update", delivered) == ["shipment.delivered"]
    later = {**delivered, "id": second["id"], "updated_at": "2026-11-24T10:00:00+01:00"}
    assert deliver("fulfillments/update", later) == ["shipment.delivered", "order.delivered"]


# -- validation ----------------------------------------------------------------------


def test_timing_keys_are_validated_with_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent(
            """
            - name: bad
              on: order.paid
              category: marketing
              wait: {until: order.created_att, offset: 1d}
              late: {skip_after: soon}
              once_per: {customer: forever}
              on_cap: wait
              do:
                - note_order: x
            """
        ).lstrip()
    )
    (tmp_path / "settings.yaml").write_text(
        'quiet_hours: {start: "25:00", end: "08:00"}\nfrequency_cap: {max: 0, per: 7d}\n'
    )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(tmp_path)
    text = "\n".join(str(e) for e in caught.value.errors)
    assert "bad.yaml:4:10: rule 'bad', wait.until: unknown field 'order.created_att'" in text
    assert "did you mean 'created_at'" in text
    assert "late: skip_after: bad duration 'soon'" in text
    assert "once_per: customer: bad duration 'forever'" in text
    assert "on_cap: Must be one of: skip, defer." in text
    assert "settings.yaml:1:" in text and "expected a time of day like 21:00, got '25:00'" in text
    assert "frequency_cap" in text


# -- per-shop settings ---------------------------------------------------------------


def test_settings_yaml_overrides_per_shop(tmp_path):
    ruleset = rules_from(
        tmp_path,
        """
        - name: offer
          on: order.paid
          category: marketing
          do:
            - email: {template: cross_sell}
        """,
        """
        sender: "Acme <shop@acme.example>"
        timezone: UTC
        quiet_hours: {start: "21:00", end: "08:00"}
        shops:
          night-owls.myshopify.com:
            sender: "Owls <hoot@owls.example>"
            quiet_hours: {start: "02:00", end: "04:00"}
        """,
    )
    owls = ruleset.settings_for("Night-Owls.myshopify.com")
    assert owls.sender == "Owls <hoot@owls.example>" and owls.timezone == "UTC"
    assert ruleset.settings_for("other.myshopify.com").sender == "Acme <shop@acme.example>"
    late = datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    default_shop = order_event(late)
    owl_shop = Event(**{**default_shop.__dict__, "shop": "night-owls.myshopify.com"})
    (planned,) = plan(ruleset, default_shop, late)
    assert planned.due_at == datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    (planned,) = plan(ruleset, owl_shop, late)
    assert planned.due_at == late  # 23:00 is outside the owls' quiet hours


def test_a_bad_per_shop_setting_names_its_place(tmp_path):
    (tmp_path / "settings.yaml").write_text(
        "timezone: UTC\nshops:\n  a.myshopify.com:\n    timezone: Mars/Olympus\n"
    )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(tmp_path)
    (error,) = caught.value.errors
    assert "settings.yaml:4:" in str(error) and "unknown time zone 'Mars/Olympus'" in str(error)
