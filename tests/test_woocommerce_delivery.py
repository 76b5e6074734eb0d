"""Delivery signals on WooCommerce: TrackShip's shipment status, custom order statuses, estimates.

The fixtures are order 4821 of the WooCommerce story as it would arrive from
a store running Advanced Shipment Tracking and TrackShip for WooCommerce
(tests/fixtures/woocommerce/SOURCES.md, "Delivery signals"): the tracking
items as AST writes them, ``ts_shipment_status`` as TrackShip's tracking
webhook writes it (only the item it updated), and the ``delivered`` order
status TrackShip moves a fully delivered order to.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.cli import build
from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.woocommerce import WooCommerceConnector
from aftersale.core.platform import DeliverySettings
from aftersale.rules.errors import RulesInvalid
from aftersale.rules.loader import load_rules
from aftersale.store.tables import actions, delivery_estimates, events
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, post_shopify, rows
from tests.test_cli import env_for
from tests.test_woocommerce import body_of, headers_of, post, woo_shop  # noqa: F401

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PARCEL = "4821-a1d7ff3cdbe5a2aaa664b0d72071a5fb"  # the DHL tracking item of order 4821
SHIPPED = datetime(2026, 11, 23, tzinfo=UTC)  # its date_shipped


def normalize(names, delivery: DeliverySettings | None = None, payloads=None):
    """Run fixtures through the connector, each against the state the previous one left."""
    connector = WooCommerceConnector()
    state, produced = OrderState(), []
    for name in names:
        body = body_of(name)
        meta = connector.read_meta(headers_of(name, body))
        meta = DeliveryMeta(
            **{
                **meta.__dict__,
                "received_at": datetime(2026, 11, 29, 10, 5, tzinfo=UTC),
                "delivery": delivery or DeliverySettings(),
            }
        )
        payload = (payloads or {}).get(name) or json.loads(body)
        result = connector.normalize(meta, payload, state)
        state = result.state or state
        produced.append(result.events)
    return produced, state


def with_trackship(name: str, value, key: str = "ts_shipment_status") -> dict:
    payload = json.loads(body_of(name))
    for meta in payload["meta_data"]:
        if meta["key"] == "ts_shipment_status":
            meta["key"], meta["value"] = key, value
    return payload


# -- TrackShip's statuses, one event per tracking number ------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("in_transit", "shipment.in_transit"),
        ("out_for_delivery", "shipment.out_for_delivery"),
        ("available_for_pickup", "shipment.ready_for_pickup"),
        ("delivered", "shipment.delivered"),
        ("failure", "shipment.attempted"),
        ("on_hold", "shipment.delayed"),
        ("exception", "shipment.delayed"),
        ("return_to_sender", "shipment.failed"),
        ("pre_transit", None),
        ("pending_trackship", None),
        ("carrier_unsupported", None),
        ("unknown", None),
        ("a_status_trackship_adds_later", None),
    ],
)
def test_each_trackship_status_becomes_its_shipment_event(status, kind):
    names = ["order.updated__completed_with_tracking", "order.updated__trackship_in_transit"]
    payloads = {names[1]: with_trackship(names[1], [{"status": status}])}
    produced, state = normalize(names, payloads=payloads)
    found = [(e.kind, e.key) for e in produced[1]]
    expected = [(kind, f"{PARCEL}:{kind}")] if kind else []
    if kind == "shipment.delivered":  # its only tracking number: the order is delivered
        expected.append(("order.delivered", "4821"))
    assert found == expected
    assert state.extra["fulfillments"][PARCEL]["status"] == status  # recorded either way
    if kind:
        event = produced[1][0]
        assert event.fulfillment["tracking_number"] == "00340434161094027318"
        assert event.fulfillment["shipment_status"] == status
        assert event.order["id"] == "4821" and event.customer["email"]


def test_a_repeated_update_with_the_same_status_emits_nothing_new():
    names = [
        "order.updated__completed_with_tracking",
        "order.updated__trackship_in_transit",
        "order.updated__trackship_in_transit",
    ]
    produced, _ = normalize(names)
    assert [[e.kind for e in found] for found in produced[1:]] == [["shipment.in_transit"], []]


def test_trackship_before_1_6_2_kept_every_item_with_its_date():
    names = ["order.updated__completed_with_tracking", "order.updated__trackship_in_transit"]
    legacy = [
        {
            "status": "out_for_delivery",
            "tracking_events": [],
            "tracking_destination_events": [],
            "status_date": "2026-11-24 07:48:00",
            "est_delivery_date": "2026-11-24",
        }
    ]
    payloads = {names[1]: with_trackship(names[1], legacy, key="shipment_status")}
    produced, _ = normalize(names, payloads=payloads)
    (event,) = produced[1]
    assert event.kind == "shipment.out_for_delivery"
    assert event.occurred_at == datetime(2026, 11, 24, 7, 48, tzinfo=UTC)


def test_delivered_by_trackship_and_the_delivered_status_is_one_delivery():
    names = [
        "order.updated__completed_with_tracking",
        "order.updated__trackship_in_transit",
        "order.updated__trackship_delivered",
    ]
    produced, _ = normalize(names)
    assert [e.kind for e in produced[2]] == ["shipment.delivered", "order.delivered"]
    assert produced[2][1].key == "4821"


# -- custom order statuses -------------------------------------------------------------


def test_shipped_and_delivered_statuses_map_to_events_by_default():
    names = [
        "order.updated__processing",
        "order.updated__status_shipped",
        "order.updated__status_delivered",
    ]
    produced, _ = normalize(names)
    assert [[(e.kind, e.key) for e in found] for found in produced[1:]] == [
        [("fulfillment.created", "4821-order")],
        [("shipment.delivered", "4821-order:shipment.delivered"), ("order.delivered", "4821")],
    ]
    assert produced[2][0].order["financial_status"] == "paid"  # a plugin status after payment


def test_the_shops_mapping_replaces_the_defaults():
    own = DeliverySettings(order_statuses={"shipped": "shipment.in_transit"})
    names = [
        "order.updated__processing",
        "order.updated__status_shipped",
        "order.updated__status_delivered",
    ]
    produced, _ = normalize(names, delivery=own)
    assert [[e.kind for e in found] for found in produced[1:]] == [["shipment.in_transit"], []]


def write_pack(folder: Path, delivery: str) -> Path:
    shutil.copytree(EXAMPLES / "shipping-updates", folder)
    settings = folder / "settings.yaml"
    settings.write_text(settings.read_text() + delivery)
    return folder


def test_settings_compile_the_delivery_block_once(tmp_path):
    folder = write_pack(
        tmp_path / "pack",
        "delivery:\n"
        "  order_statuses: {wc-dispatched: fulfillment.created, shipped: null}\n"
        "  estimated_delivery: {days: 4, countries: {at: 2}}\n",
    )
    delivery = load_rules(folder).settings.delivery
    assert dict(delivery.order_statuses) == {
        "delivered": "shipment.delivered",
        "dispatched": "fulfillment.created",
    }
    assert delivery.days_to("AT") == 2 and delivery.days_to("US") == 4
    assert load_rules(EXAMPLES / "shipping-updates").settings.delivery.estimates is False


def test_a_bad_delivery_setting_names_the_file_and_what_is_allowed(tmp_path):
    folder = write_pack(
        tmp_path / "pack", "delivery:\n  order_statuses: {delivered: order.delivered}\n"
    )
    with pytest.raises(RulesInvalid) as failed:
        load_rules(folder)
    message = str(failed.value)
    assert "settings.yaml" in message and "shipment.delivered" in message


# -- estimated delivery, on real services ---------------------------------------------


DELIVERED_RULE = """\
- name: delivered
  description: Tell the customer the parcel arrived.
  on: shipment.delivered
  once_per: fulfillment
  category: transactional
  do:
    - email: {template: parcel_delivered}
"""


@pytest.fixture
def rules_dir(tmp_path):
    """One rule on shipment.delivered with its own template; delivery estimated 5 days after
    shipping (2 to Austria)."""
    folder = tmp_path / "rules"
    (folder / "templates" / "parcel_delivered").mkdir(parents=True)
    (folder / "delivered.yaml").write_text(DELIVERED_RULE)
    (folder / "settings.yaml").write_text(
        'sender: "Shop <shop@example.com>"\n'
        "delivery:\n  estimated_delivery:\n    days: 5\n    countries: {AT: 2}\n"
    )
    template = folder / "templates" / "parcel_delivered"
    (template / "subject.txt").write_text("Your order {{ order.name }} has arrived\n")
    (template / "body.txt").write_text("Your order {{ order.name }} has arrived.\n")
    (template / "body.html").write_text("<p>Your order {{ order.name }} has arrived.</p>\n")
    return folder


def delivered_mails(runtime, smtp_server) -> list:
    """The mails the pack's ``delivered`` rule sent (its subject is in the pack's language)."""
    sent = [
        a for a in rows(runtime.engine, actions) if a.rule == "delivered" and a.status == "sent"
    ]
    assert len(smtp_server.handler.messages) >= len(sent)
    return sent


def test_an_estimate_then_the_real_signal_sends_one_delivered_mail(
    client, runtime, woo_shop, work, scheduler, clock, smtp_server, cli_runner
):
    post(client, "order.updated__completed_with_tracking")
    work()
    (estimate,) = rows(runtime.engine, delivery_estimates)
    assert (estimate.status, estimate.due_at) == ("pending", SHIPPED + timedelta(days=2))

    clock.set(SHIPPED + timedelta(days=2, minutes=1))
    assert scheduler.tick().estimates_emitted == 1
    work()
    assert len(delivered_mails(runtime, smtp_server)) == 1
    stored = {e.kind: e for e in rows(runtime.engine, events)}
    delivered = stored["shipment.delivered"]
    assert delivered.payload["fulfillment"]["estimated"] is True
    assert delivered.payload["source"]["estimated"] is True
    assert stored["order.delivered"].payload["source"]["estimated"] is True

    # TrackShip reports the real delivery later: the same delivery fact, nothing sent again
    post(client, "order.updated__trackship_delivered")
    work()
    assert scheduler.tick().estimates_emitted == 0
    work()
    assert len(delivered_mails(runtime, smtp_server)) == 1
    kinds = sorted(e.kind for e in rows(runtime.engine, events))
    assert kinds.count("shipment.delivered") == 1 and kinds.count("order.delivered") == 1

    # ``actions show`` says the delivery was estimated
    (action,) = delivered_mails(runtime, smtp_server)
    shown = cli_runner.invoke(
        build(), ["actions", "show", str(action.id)], env=env_for(runtime.config)
    )
    assert shown.exit_code == 0, shown.output
    assert "estimated" in shown.output


def test_a_real_signal_before_the_estimate_cancels_it(
    client, runtime, woo_shop, work, scheduler, clock, smtp_server
):
    post(client, "order.updated__completed_with_tracking")
    post(client, "order.updated__trackship_in_transit")
    work()
    (estimate,) = rows(runtime.engine, delivery_estimates)
    assert estimate.status == "cancelled" and estimate.note == "real shipment.in_transit"

    clock.set(SHIPPED + timedelta(days=10))
    assert scheduler.tick().estimates_emitted == 0
    work()
    assert delivered_mails(runtime, smtp_server) == []
    post(client, "order.updated__trackship_delivered")
    work()
    assert len(delivered_mails(runtime, smtp_server)) == 1
    (delivered,) = [e for e in rows(runtime.engine, events) if e.kind == "shipment.delivered"]
    assert delivered.payload["fulfillment"]["estimated"] is False


def test_a_store_without_tracking_gets_an_estimate_from_completion(
    client, runtime, woo_shop, work, scheduler, clock, smtp_server
):
    post(client, "order.updated__processing")
    body = json.loads(body_of("order.updated__status_delivered"))
    body.update(status="completed", date_completed_gmt="2026-11-23T08:42:17")
    body.update(date_completed="2026-11-23T09:42:17", date_modified_gmt="2026-11-23T08:42:17")
    post(client, "order.updated__status_delivered", body=json.dumps(body, indent=2).encode())
    work()
    (estimate,) = rows(runtime.engine, delivery_estimates)
    assert estimate.fulfillment_ref == "4821-order"
    assert estimate.due_at == datetime(2026, 11, 25, 8, 42, 17, tzinfo=UTC)
    clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    scheduler.tick()
    work()
    assert len(delivered_mails(runtime, smtp_server)) == 1


def test_a_shopify_parcel_without_carrier_events_gets_the_same_estimate(
    client, runtime, work, scheduler, clock, smtp_server
):
    for topic, name in [
        ("orders/create", "orders__create"),
        ("fulfillments/create", "fulfillments__create__first_parcel"),
    ]:
        post_shopify(client, topic, fixture_bytes("shopify", name), SHOPIFY_SECRET)
    work()
    (estimate,) = rows(runtime.engine, delivery_estimates)
    shipped = datetime(2026, 11, 21, 14, 30, 12, tzinfo=UTC)
    assert estimate.due_at == shipped + timedelta(days=5)  # Serbia: the default days

    clock.set(shipped + timedelta(days=6))
    scheduler.tick()
    work()
    assert len(delivered_mails(runtime, smtp_server)) == 1
    # the cups were not shipped yet: the order is not delivered
    assert "order.delivered" not in [e.kind for e in rows(runtime.engine, events)]
