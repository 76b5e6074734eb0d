"""Orders changed since a moment, from Shopify's Admin API, as the deliveries webhooks would be.

Reconciliation (workers/reconcile.py) asks ``GET /admin/api/{version}/orders.json``
with ``status=any``, ``updated_at_min`` and ``order=updated_at asc``, 250 a page;
later pages follow the ``Link: <...page_info=...>; rel="next"`` header, whose
URL must be used as it is (Shopify refuses filters beside ``page_info``). The
REST order has the shape of the ``orders/*`` webhook bodies, and its
``fulfillments`` and ``refunds`` the shapes of the ``fulfillments/*`` and
``refunds/create`` bodies, so each becomes the delivery Shopify would have sent
and goes through the same topic handlers. Orders older than 60 days need the
``read_all_orders`` scope; returns are not in the REST order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from aftersale.connectors.base import time_or_none
from aftersale.connectors.paging import Page
from aftersale.connectors.shopify import rest
from aftersale.core.events import iso
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

#: the webhook topic whose bodies a listed order is shaped like
ORDER_TOPIC = "orders/create"
PAGE_SIZE = 250
PAID = frozenset({"paid", "partially_refunded", "refunded"})


def has_access(credentials: dict) -> bool:
    """Whether the stored credentials can call the Admin API (a token, or the app's client
    credentials to get one); a shop without them is not asked for anything."""
    return bool(credentials.get("access_token") or credentials.get("client_secret"))


def order_pages(
    shop: ShopAccess,
    session: requests.Session,
    since: datetime,
    *,
    sleep=time.sleep,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """Pages of orders updated at or after ``since``, oldest change first."""
    params = {
        "status": "any",
        "limit": page_size,
        "order": "updated_at asc",
        "updated_at_min": iso(since),
    }
    return rest.list_pages(shop, session, "orders", params, sleep=sleep)


def order_version(order: dict) -> datetime | None:
    return time_or_none(order.get("updated_at"))


def as_deliveries(order: dict, *, known: bool, since: datetime) -> list[tuple[str, dict]]:
    """The (topic, body) deliveries that tell Aftersale what happened to ``order`` since
    ``since``; what happened before is left alone (it is history, not news).

    ``known``: Aftersale already stores this order, so its creation is not news.
    Repeats are harmless: events are keyed (order id, fulfillment id, refund id),
    so a delivery that was also received as a webhook produces nothing new.
    """
    out: list[tuple[str, dict]] = []
    created = time_or_none(order.get("created_at"))
    if not known and created is not None and created >= since:
        out.append(("orders/create", order))
    if order.get("financial_status") in PAID and (known or (created and created >= since)):
        out.append(("orders/paid", order))
    for fulfillment in order.get("fulfillments") or []:
        if not isinstance(fulfillment, dict):
            continue
        moment = time_or_none(fulfillment.get("updated_at")) or time_or_none(
            fulfillment.get("created_at")
        )
        if moment is not None and moment >= since:
            out.append(("fulfillments/create", {"order_id": order.get("id"), **fulfillment}))
    if order.get("fulfillment_status") == "fulfilled" and any(
        topic == "fulfillments/create" for topic, _ in out
    ):
        out.append(("orders/fulfilled", order))
    for refund in order.get("refunds") or []:
        if isinstance(refund, dict) and (time_or_none(refund.get("created_at")) or since) >= since:
            out.append(("refunds/create", {"order_id": order.get("id"), **refund}))
    cancelled = time_or_none(order.get("cancelled_at"))
    if cancelled is not None and cancelled >= since:
        out.append(("orders/cancelled", order))
    if not out:
        out.append(("orders/updated", order))  # keeps the stored order fresh
    return out
