"""Planting actions straight into the database, for lifecycle tests that need many of them.

The event is the real ``orders/create`` fixture normalized by the Shopify
connector and stored like the pipeline stores it; the actions are rows as
``workers/processing.py`` writes them, so workers and the scheduler see
exactly what they would in production.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import update

from aftersale.connectors.base import DeliveryMeta, OrderState
from aftersale.connectors.shopify import ShopifyConnector
from aftersale.store import actions as action_store
from aftersale.store import events as event_store
from aftersale.store import planning
from aftersale.store import shops as shop_store
from aftersale.store import state as state_store
from aftersale.store.queues import by_job, enqueue_actions
from aftersale.store.tables import shops
from tests.helpers import install_shop, load_fixture

SHOP = "aftersale-demo.myshopify.com"


def store_event(runtime, *, customer_changes: dict | None = None, order_changes=None):
    """Store the orders/create fixture as an event; (shop id, event id, Event)."""
    now = runtime.clock.now()
    payload = load_fixture("shopify", "orders__create")
    if order_changes:
        payload.update(order_changes)
    meta = DeliveryMeta(platform="shopify", shop=SHOP, topic="orders/create", received_at=now)
    (event,) = ShopifyConnector().normalize(meta, payload, OrderState()).events
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", SHOP, now)
        customer = {**event.customer, **(customer_changes or {})}
        event = replace(event, customer=state_store.remember_customer(conn, shop_id, customer, now))
        event_id = event_store.insert_event(conn, shop_id, None, event, now)
    return shop_id, event_id, event


def plant(
    runtime,
    shop_id: int,
    event_id: int,
    event,
    steps: list[tuple[str, dict]],
    *,
    due_at: datetime | None = None,
    rule: str = "test-rule",
    category: str = "transactional",
    count: int = 1,
) -> list[int]:
    """``count`` copies of a rule's ``steps`` for one event (each copy its own once key)."""
    now = runtime.clock.now()
    rows = [
        {
            "shop_id": shop_id,
            "event_id": event_id,
            "rule": rule if count == 1 else f"{rule}-{n}",
            "step": index,
            "action_type": step_type,
            "params": params,
            "category": category,
            "order_ref": event.order_ref,
            "customer_ref": event.customer_ref,
            "fulfillment_ref": None,
            "once_key": f"{shop_id}|{rule}|{n}|order:{event.order_ref}|{index}",
            "due_at": due_at or now,
            "cancel_on": [],
        }
        for n in range(count)
        for index, (step_type, params) in enumerate(steps)
    ]
    with runtime.engine.begin() as conn:
        return [action_id for action_id, _ in planning.create(conn, rows, now)]


def hand_off(runtime, ids: list[int]) -> dict[str, list[int]]:
    """Enqueue queued actions on RQ as processing does right after its commit."""
    jobs = by_job(enqueue_actions(runtime, ids))
    with runtime.engine.begin() as conn:
        action_store.set_jobs(conn, jobs, runtime.clock.now())
    return jobs


def configure_shop(runtime, shop_id: int, *, credentials: dict | None = None, **settings):
    """Store API credentials (encrypted) and settings such as ``api_url`` on a shop."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        if credentials is not None:
            shop_store.save_credentials(conn, shop_id, runtime.config.secret_keys, credentials, now)
        if settings:
            conn.execute(update(shops).where(shops.c.id == shop_id).values(settings=settings))
    # Workers cache shop rows for a few seconds; this change must apply to the next action.
    runtime.forget_shops()


def shopify_api_shop(runtime, api_url: str) -> int:
    """The demo shop installed with an Admin API token, its API at ``api_url`` (a stand-in)."""
    shop_id = install_shop(runtime)
    configure_shop(runtime, shop_id, credentials={"access_token": "shpat_test"}, api_url=api_url)
    return shop_id


def woocommerce_api_shop(runtime, domain: str, api_url: str, **credentials) -> int:
    """A WooCommerce store connected with a REST API key, its API at ``api_url``."""
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "woocommerce", domain, runtime.clock.now())
    keys = {"consumer_key": "ck_test", "consumer_secret": "cs_test", **credentials}
    configure_shop(runtime, shop_id, credentials=keys, api_url=api_url)
    return shop_id
