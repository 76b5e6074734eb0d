"""A job's reads (workers/job_reads.py): one query per kind for all its actions, its copies
used while younger than FRESH_S, after which each action reads the database again."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import insert, update

from aftersale.core.events import Event
from aftersale.store import events as event_store
from aftersale.store import messages as message_store
from aftersale.store import shops as shop_store
from aftersale.store.tables import order_states
from aftersale.workers.job_reads import FRESH_S, JobReads


def order_event(n: int, clock) -> Event:
    return Event(
        kind="order.created",
        shop="s.myshopify.com",
        key=f"order-{n}",
        occurred_at=clock.now(),
        order={"id": str(n), "total_price": f"{n}0.00", "line_items": []},
        customer={"id": f"c{n}"},
    )


def test_the_job_copy_while_fresh_then_the_database(runtime, clock):
    now = clock.now()
    planted = []
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "s.myshopify.com", now)
        for n in (1, 2):
            event = order_event(n, clock)
            event_id = event_store.insert_event(conn, shop_id, None, event, now)
            conn.execute(
                insert(order_states).values(
                    shop_id=shop_id,
                    order_ref=str(n),
                    customer_ref=f"c{n}",
                    order={"id": str(n), "financial_status": "paid"},
                    extra={},
                    created_at=now,
                    updated_at=now,
                )
            )
            planted.append(
                SimpleNamespace(
                    id=n, shop_id=shop_id, event_id=event_id, order_ref=str(n), customer_ref=None
                )
            )

    with runtime.engine.connect() as conn:
        reads = JobReads.read(conn, planted)
        assert reads.order(conn, shop_id, "1")["financial_status"] == "paid"
        assert [r.order_ref for r in reads.customer_orders(conn, shop_id, "c2")] == ["2"]
        assert reads.order(conn, shop_id, "9") is None  # no state, not asked: read, not found

    with runtime.engine.begin() as conn:  # refunded while the job runs
        conn.execute(
            update(order_states)
            .where(order_states.c.order_ref == "1")
            .values(order={"id": "1", "financial_status": "refunded"})
        )
        event_store.insert_event(conn, shop_id, None, order_event(3, clock), now)

    with runtime.engine.connect() as conn:
        assert reads.order(conn, shop_id, "1")["financial_status"] == "paid"  # the job's copy
        reads._read_at -= FRESH_S  # a second later
        assert reads.order(conn, shop_id, "1")["financial_status"] == "refunded"
        assert [r.order_ref for r in reads.customer_orders(conn, shop_id, "c2")] == ["2"]
        assert reads.customer_orders(conn, shop_id, "c3")[0].order_ref == "3"


def test_the_job_reads_its_addresses_suppressions_once(runtime, clock):
    now, keys = clock.now(), runtime.config.secret_keys
    planted = []
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "s.myshopify.com", now)
        for n, email in ((1, "Ana@Example.com"), (2, "bo@example.com")):
            event = order_event(n, clock)
            event = Event(**{**event.__dict__, "customer": {"id": f"c{n}", "email": email}})
            event_id = event_store.insert_event(conn, shop_id, None, event, now)
            planted.append(
                SimpleNamespace(
                    id=n, shop_id=shop_id, event_id=event_id, order_ref=str(n), customer_ref=None
                )
            )
        message_store.suppress(
            conn, shop_id, "email", "bo@example.com", "unsubscribed", "t", now, keys=keys
        )

    def ask(conn, address, category):
        return reads.suppression(conn, shop_id, "email", address, category, keys=keys)

    with runtime.engine.connect() as conn:
        reads = JobReads.read(conn, planted, secrets=keys)
        assert reads.suppressions == {
            (shop_id, "ana@example.com"): None,
            (shop_id, "bo@example.com"): "unsubscribed",
        }
        assert ask(conn, "BO@example.com", "marketing") == "unsubscribed"
        assert ask(conn, "bo@example.com", "transactional") is None

    with runtime.engine.begin() as conn:  # Ana's next mail bounces while the job runs
        message_store.suppress(
            conn, shop_id, "email", "ana@example.com", "bounced", "t", now, keys=keys
        )
    with runtime.engine.connect() as conn:
        assert ask(conn, "ana@example.com", "transactional") is None  # the job's copy
        reads._read_at -= FRESH_S  # a second later
        assert ask(conn, "ana@example.com", "transactional") == "bounced"
