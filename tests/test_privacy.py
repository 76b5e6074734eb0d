"""Privacy and lifecycle webhooks end to end: signed delivery -> receiver -> RQ worker -> rows.

Shopify's compliance topics (``customers/redact``, ``customers/data_request``,
``shop/redact``) and ``app/uninstalled``, with the real fixtures, on both
databases; and the retention of raw delivery bodies, on the test clock.
"""

from __future__ import annotations

import json
import shutil
import stat
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aftersale.core.events import parse_time
from aftersale.store import messages as message_store
from aftersale.store import shops as shop_store
from aftersale.store.tables import (
    actions,
    customers,
    deliveries,
    events,
    metadata,
    shops,
    suppressions,
)
from aftersale.workers.scheduler import Scheduler
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, fixture_bytes, load_fixture, post_shopify, rows

SHOP = "aftersale-demo.myshopify.com"
OTHER_SHOP = "other-shop.myshopify.com"
ORDER = load_fixture("shopify", "orders__create")
CUSTOMER = ORDER["customer"]
ADDRESS = CUSTOMER["default_address"]
#: what must not survive a customers/redact anywhere in the database
PERSONAL = [
    ORDER["email"],
    CUSTOMER["phone"],
    ADDRESS["phone"],
    CUSTOMER["last_name"],
    json.dumps(CUSTOMER["last_name"])[1:-1],  # as a JSON body escapes it: Petrovi\u0107
    ADDRESS["name"],
    ADDRESS["address1"],
    ADDRESS["address2"],
]


@pytest.fixture
def rules_dir(tmp_path):
    """A thank-you sent at once and a follow-up three days later (pending, to be cancelled)."""
    folder = tmp_path / "rules"
    folder.mkdir()
    starter = Path(__file__).resolve().parent.parent / "examples" / "starter"
    shutil.copy(starter / "settings.yaml", folder / "settings.yaml")
    (folder / "rules.yaml").write_text(
        textwrap.dedent(
            """
            - name: thank-you
              on: order.created
              category: transactional
              do:
                - email: {template: thank_you}
            - name: follow-up
              on: order.created
              wait: 3d
              category: transactional
              do:
                - email: {template: thank_you}
            """
        )
    )
    return folder


@pytest.fixture(autouse=True)
def at_order_time(clock):
    clock.set(parse_time(ORDER["created_at"]) + timedelta(minutes=1))


@pytest.fixture(autouse=True)
def installed(runtime, clock):
    """The shops have installed the app (Shopify deliveries are accepted only then)."""
    with runtime.engine.begin() as conn:
        for domain in (SHOP, OTHER_SHOP):
            shop = shop_store.ensure_shop(conn, "shopify", domain, clock.now())
            shop_store.save_credentials(
                conn, shop, runtime.config.secret_keys, {"access_token": "shpat_x"}, clock.now()
            )


def send(client, topic, body=None, **kwargs):
    body = body if body is not None else fixture_bytes("shopify", topic.replace("/", "__"))
    response = post_shopify(client, topic, body, SHOPIFY_SECRET, **kwargs)
    assert response.status_code == 200, response.json
    return response


def later_order(order_id: int) -> dict:
    """The same customer ordering again."""
    return {**ORDER, "id": order_id, "name": f"#{order_id}", "order_number": order_id}


def database_text(engine) -> str:
    """Every row of every table, as text (bytes decoded, JSON as written)."""

    def cell(value):
        if isinstance(value, bytes | memoryview):
            return bytes(value).decode("utf-8", "replace")
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False) + json.dumps(value)
        return str(value)

    with engine.connect() as conn:
        return "\n".join(
            " | ".join(cell(v) for v in row)
            for table in metadata.sorted_tables
            for row in conn.execute(select(table)).all()
        )


def shop_id(runtime) -> int:
    (shop,) = rows(runtime.engine, shops, shops.c.domain == SHOP)
    return shop.id


def by_rule(runtime) -> dict:
    return {(a.rule, a.order_ref): a for a in rows(runtime.engine, actions)}


def test_customer_redact_erases_the_customer_everywhere(client, work, runtime, clock, smtp_server):
    send(client, "orders/create")
    send(client, "fulfillments/create")
    work()
    assert len(smtp_server.handler.messages) == 1  # the thank-you
    order_ref = str(ORDER["id"])
    assert by_rule(runtime)[("follow-up", order_ref)].status == "scheduled"
    keys, shop = runtime.config.secret_keys, shop_id(runtime)
    with runtime.engine.begin() as conn:  # an unsubscribe stored before hashing: plain
        message_store.suppress(
            conn, shop, "email", ORDER["email"], "unsubscribed", "link", clock.now()
        )
    assert ORDER["email"] in database_text(runtime.engine)

    send(client, "customers/data_request")  # its body names the customer too
    send(client, "customers/redact")
    work()

    text = database_text(runtime.engine)
    for value in PERSONAL:
        assert value not in text, value
    follow_up = by_rule(runtime)[("follow-up", order_ref)]
    assert (follow_up.status, follow_up.skip_reason) == ("skipped", "redacted")
    (customer,) = rows(runtime.engine, customers)
    assert customer.redacted_at is not None and customer.email is None
    assert all(d.status == "processed" for d in rows(runtime.engine, deliveries))
    # the delivery records stay; the bodies naming the customer are gone
    assert count(runtime.engine, deliveries, deliveries.c.body == b"") == 4

    # still unsubscribed, by the keyed hash alone
    (suppressed,) = rows(runtime.engine, suppressions)
    assert suppressed.address.startswith(message_store.HASH_PREFIX)
    with runtime.engine.connect() as conn:
        blocked = message_store.suppression(
            conn, shop, "email", ORDER["email"].upper(), "marketing", keys=keys
        )
    assert blocked == "unsubscribed"

    # a later order of theirs plans as usual, and sends nothing
    send(client, "orders/create", json.dumps(later_order(5678901239999)).encode())
    work()
    clock.advance(timedelta(days=4))
    Scheduler(runtime).tick(clock.now())
    work()
    assert len(smtp_server.handler.messages) == 1
    later = [a for a in rows(runtime.engine, actions) if a.order_ref == "5678901239999"]
    assert later and {(a.status, a.skip_reason) for a in later} == {
        ("skipped", "customer_redacted")
    }


def test_new_suppressions_keep_only_a_keyed_hash(runtime, client, work, clock):
    send(client, "orders/create")
    work()
    keys, shop = runtime.config.secret_keys, shop_id(runtime)
    with runtime.engine.begin() as conn:
        assert message_store.suppress(
            conn, shop, "email", ORDER["email"], "unsubscribed", "link", clock.now(), keys=keys
        )
        again = message_store.suppress(
            conn, shop, "email", ORDER["email"], "unsubscribed", "x", clock.now(), keys=keys
        )
        assert not again  # already suppressed for that reason
        for category, expected in (("marketing", "unsubscribed"), ("transactional", None)):
            found = message_store.suppression(
                conn, shop, "email", ORDER["email"], category, keys=keys
            )
            assert found == expected
        # a rotated SECRET_KEY still finds the hash made with the previous one
        rotated = ("new-secret-key", *keys)
        found = message_store.suppression(
            conn, shop, "email", ORDER["email"], "marketing", keys=rotated
        )
        assert found == "unsubscribed"
    (row,) = rows(runtime.engine, suppressions)
    assert row.address.startswith(message_store.HASH_PREFIX)
    assert ORDER["email"] not in row.address


def test_a_bounce_after_an_unsubscribe_stops_transactional_mail_too(runtime, client, work, clock):
    """A suppression keeps its reason unless the new one blocks more: unsubscribed then
    bounced is bounced (order mail stops too, even for a row hashed under the previous
    SECRET_KEY); a complaint stays a complaint after an unsubscribe click."""
    send(client, "orders/create")
    work()
    keys, shop = runtime.config.secret_keys, shop_id(runtime)
    rotated = ("new-secret-key", *keys)
    with runtime.engine.begin() as conn:

        def suppress(address, reason, with_keys=keys):
            return message_store.suppress(
                conn, shop, "email", address, reason, "test", clock.now(), keys=with_keys
            )

        def blocks(address, category):
            return message_store.suppression(conn, shop, "email", address, category, keys=rotated)

        assert suppress(ORDER["email"], "unsubscribed")
        assert blocks(ORDER["email"], "transactional") is None
        assert suppress(ORDER["email"], "bounced", rotated)
        assert blocks(ORDER["email"], "transactional") == "bounced"
        assert not suppress(ORDER["email"], "unsubscribed", rotated)
        assert blocks(ORDER["email"], "marketing") == "bounced"

        assert suppress("angry@example.com", "complaint")
        assert not suppress("angry@example.com", "unsubscribed")
        assert not suppress("angry@example.com", "bounced")
        assert blocks("angry@example.com", "transactional") == "complaint"
    assert len(rows(runtime.engine, suppressions)) == 2


def test_data_request_writes_an_export_of_the_customer(client, work, runtime, config):
    send(client, "orders/create")
    work()
    request = load_fixture("shopify", "customers__data_request")
    send(client, "customers/data_request")
    work()

    path = config.instance_path / "exports" / SHOP / f"{request['data_request']['id']}.json"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    export = json.loads(path.read_text())
    assert export["data_request"]["id"] == str(request["data_request"]["id"])
    assert export["stored"]["customers"][0]["email"] == ORDER["email"]
    assert [o["order_ref"] for o in export["stored"]["orders"]] == [str(ORDER["id"])]
    text = path.read_text()
    assert CUSTOMER["last_name"] in text and ADDRESS["address1"] in text
    assert {a["rule"] for a in export["stored"]["actions"]} == {"thank-you", "follow-up"}
    # asking changes nothing
    assert rows(runtime.engine, customers)[0].redacted_at is None


def test_uninstall_cancels_pending_actions_and_later_deliveries_do_nothing(
    client, work, runtime, clock, smtp_server, config
):
    send(client, "orders/create")
    work()
    send(client, "app/uninstalled")
    # stored before the uninstall was processed: processing records it as ignored
    send(client, "orders/create", json.dumps(later_order(5678901238888)).encode())
    events_before = count(runtime.engine, events)
    work()

    (shop,) = rows(runtime.engine, shops, shops.c.domain == SHOP)
    assert (shop.status, shop.credentials) == ("uninstalled", None)
    follow_up = by_rule(runtime)[("follow-up", str(ORDER["id"]))]
    assert (follow_up.status, follow_up.skip_reason) == ("skipped", "uninstalled")

    latest = rows(runtime.engine, deliveries)[-1]
    assert (latest.status, latest.error) == ("ignored", "shop uninstalled")
    assert count(runtime.engine, events) == events_before + 1  # app.uninstalled only
    clock.advance(timedelta(days=4))
    Scheduler(runtime).tick(clock.now())
    work()
    assert len(smtp_server.handler.messages) == 1  # only the thank-you before the uninstall

    # the compliance requests are still honoured
    send(client, "customers/data_request")
    work()
    assert list((config.instance_path / "exports" / SHOP).glob("*.json"))


def test_shop_redact_deletes_every_row_of_the_shop(client, work, runtime):
    send(client, "orders/create")
    send(client, "orders/create", shop=OTHER_SHOP)
    work()
    send(client, "app/uninstalled")
    work()
    send(client, "shop/redact")
    work()

    with runtime.engine.connect() as conn:
        (other_id,) = conn.execute(select(shops.c.id)).scalars().all()
        for table in metadata.sorted_tables:
            if "shop_id" in table.c:
                left = conn.execute(select(table).where(table.c.shop_id != other_id)).all()
                assert left == [], table.name
    assert count(runtime.engine, shops, shops.c.domain == SHOP) == 0
    assert count(runtime.engine, events) == 1  # the other shop's order


def test_old_delivery_bodies_are_emptied_new_ones_kept(client, work, runtime, clock, config):
    send(client, "orders/create")
    work()
    clock.advance(timedelta(days=config.delivery_body_days, seconds=1))
    send(client, "fulfillments/create")
    work()
    old, new = rows(runtime.engine, deliveries)

    scheduler = Scheduler(runtime, batch=1)
    assert scheduler.tick(clock.now()).bodies_expired == 1
    old_after, new_after = rows(runtime.engine, deliveries)
    assert (old_after.body, old_after.headers) == (b"", {})
    assert (
        (old_after.status, old_after.topic)
        == (old.status, old.topic)
        == ("processed", "orders/create")
    )
    assert (new_after.body, new_after.headers) == (new.body, new.headers) and new.body
    assert count(runtime.engine, events) == 2  # what the bodies meant stays

    assert scheduler.tick(clock.now()).bodies_expired == 0  # looked again only minutes later
    clock.advance(timedelta(days=1))
    assert scheduler.tick(clock.now()).bodies_expired == 0  # one day old: kept
    assert rows(runtime.engine, deliveries)[1].body == new.body
