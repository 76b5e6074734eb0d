"""Orders changed since a moment, from the WooCommerce REST API, as webhook deliveries.

Reconciliation (workers/reconcile.py) asks ``GET /wp-json/wc/v3/orders`` with
``modified_after`` (and ``dates_are_gmt=true``, so the moment is read as GMT),
``orderby=modified&order=asc``, 100 a page, following ``X-WP-TotalPages``
[woocommerce: includes/rest-api/Controllers/Version3/class-wc-rest-orders-controller.php
collection params]. The REST order is exactly the body of an ``order.updated``
webhook (both are the v3 order as ``prepare_object_for_response`` builds it),
and the connector diffs each delivery against the stored state, so one
``order.updated`` per order says everything that changed: a missed creation,
payment, tracking, completion, cancellation or refund.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from aftersale.connectors.base import time_or_none
from aftersale.connectors.paging import Page
from aftersale.connectors.woocommerce import rest
from aftersale.core.platform import ShopAccess

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

#: the webhook topic whose bodies a listed order is shaped like
ORDER_TOPIC = "order.updated"
PAGE_SIZE = 100


def has_access(credentials: dict) -> bool:
    """Whether the stored credentials hold a REST API key (a store connected only for
    webhooks has none, and is not asked for anything)."""
    return bool(credentials.get("consumer_key") and credentials.get("consumer_secret"))


def order_pages(
    shop: ShopAccess,
    session: requests.Session,
    since: datetime,
    *,
    sleep=time.sleep,
    page_size: int = PAGE_SIZE,
) -> Iterator[Page]:
    """Pages of orders modified after ``since``, oldest change first."""
    params = {
        "modified_after": since.strftime("%Y-%m-%dT%H:%M:%S"),
        "dates_are_gmt": "true",
        "orderby": "modified",
        "order": "asc",
        "status": "any",
    }
    return rest.list_pages(shop, session, "orders", params, page_size=page_size, sleep=sleep)


def order_version(order: dict) -> datetime | None:
    return time_or_none(order.get("date_modified_gmt"))


def as_deliveries(order: dict, *, known: bool, since: datetime) -> list[tuple[str, dict]]:
    """One ``order.updated``: the connector's diff against the stored state finds the news
    (and announces a creation only for an order created within two days)."""
    return [("order.updated", order)]
