"""WooCommerce delivery signals: tracking services' shipment status, and the store's order status.

Two sources, both read from the ``order.updated`` body (see
tests/fixtures/woocommerce/SOURCES.md for where each shape was checked):

- **TrackShip for WooCommerce** writes the carrier's status of each tracking
  number into order meta, by the tracking item's position in
  ``_wc_shipment_tracking_items`` (Advanced Shipment Tracking or Shipment
  Tracking). Current versions write ``ts_shipment_status`` holding only the
  item just updated (``[{"status": "delivered"}]`` for item 0,
  ``{"1": {"status": ...}}`` for item 1, no date); versions before 1.6.2 wrote
  ``shipment_status`` with every item and its ``status_date``.
- **The order status** a plugin adds (``delivered`` from TrackShip or AST,
  ``shipped`` from custom-status plugins), mapped to an event by the shop's
  settings (``DeliverySettings.order_statuses``).

Each tracking item is a parcel of the ledger (``connectors/shipments.py``), so
a status becomes one ``shipment.*`` event per tracking number, the same events
Shopify's connector gives, and a repeated ``order.updated`` (the meta keeps
the last status) emits nothing new. ``order.delivered`` follows once every
tracking number still on the order is delivered.
"""

from __future__ import annotations

from aftersale.connectors import shipments as ledger
from aftersale.connectors.base import OrderState
from aftersale.connectors.base import time_or_none as _time
from aftersale.connectors.woocommerce.canonical import canonical_fulfillment, trackings
from aftersale.core.events import iso

#: TrackShip's meta keys: current versions, and before 1.6.2
TRACKSHIP_META = "ts_shipment_status"
TRACKSHIP_LEGACY_META = "shipment_status"

#: TrackShip's statuses -> canonical kinds (docs.trackship.com shipment status reference).
#: Its "Delivery Failure" is a failed attempt; "Return To Sender" is the parcel not arriving.
TRACKSHIP_KINDS = {
    "in_transit": "shipment.in_transit",
    "out_for_delivery": "shipment.out_for_delivery",
    "available_for_pickup": "shipment.ready_for_pickup",
    "delivered": "shipment.delivered",
    "failure": "shipment.attempted",
    "on_hold": "shipment.delayed",
    "exception": "shipment.delayed",
    "return_to_sender": "shipment.failed",
}
#: statuses that say nothing to a customer yet (label made, TrackShip still waiting, a
#: tracking number it cannot follow); recorded, no event. Unknown ones are treated alike.
QUIET_STATUSES = frozenset(
    {
        "pre_transit",
        "unknown",
        "pending_trackship",
        "pending",
        "carrier_unsupported",
        "invalid_tracking",
        "invalid_carrier",
        "insufficient_balance",
        "label_cancelled",
        "connection_issue",
        "deleted",
        "expired",
        "cancelled",
    }
)
#: a parcel standing for the whole order when the store keeps no tracking numbers
WHOLE_ORDER = "order"


def track(connector, payload, order, customer, state: OrderState, meta, now):
    """The delivery events in this payload and the parcel ledger to store: (events, ledger)."""
    book = OrderState(
        order=order,
        extra={"fulfillments": dict(state.extra.get("fulfillments") or {})},
    )
    parcels = []
    for item in trackings(payload):
        fulfillment = canonical_fulfillment(item, order, payload)
        book = ledger.record(book, fulfillment, None, None)
        parcels.append(fulfillment)
    book = _forget_removed(book, {f["id"] for f in parcels})
    if not parcels and payload.get("status") == "completed":
        book = _shipped_whole(book, order, payload, now)
    events = []
    for index, status, at in plugin_statuses(payload):
        if index < len(parcels):
            book = _status(
                connector, status, parcels[index], at or now, meta, book, events, order, customer
            )
    before = state.extra.get("status") if state.known else None
    kind = meta.delivery.order_statuses.get(payload.get("status"))
    if kind and payload.get("status") != before:
        book = _order_status(connector, kind, payload, parcels, now, meta, book, events, customer)
    return events, book.extra["fulfillments"]


def plugin_statuses(payload: dict) -> list[tuple[int, str, object]]:
    """(tracking item index, status, time or None) from TrackShip's meta, current or legacy."""
    found = []
    for meta in payload.get("meta_data") or []:
        if not isinstance(meta, dict) or meta.get("key") not in (
            TRACKSHIP_META,
            TRACKSHIP_LEGACY_META,
        ):
            continue
        for index, entry in _by_index(meta.get("value")):
            status = entry.get("status")
            if isinstance(status, str) and status.strip():
                found.append((index, status.strip().lower(), _time(entry.get("status_date"))))
    return found


def _by_index(value) -> list[tuple[int, dict]]:
    """A PHP array as JSON: a list when its keys are 0..n-1, else an object keyed by index."""
    if isinstance(value, list):
        pairs = enumerate(value)
    elif isinstance(value, dict):
        pairs = ((int(k), v) for k, v in value.items() if str(k).isdigit())
    else:
        return []
    return [(index, entry) for index, entry in pairs if isinstance(entry, dict)]


def _status(connector, status, fulfillment, at, meta, book, events, order, customer):
    seen = ledger.entry(book, fulfillment["id"])
    if seen.get("status") == status and not seen.get("estimated"):
        return book  # the meta still holds the last status: announced already
    kind = TRACKSHIP_KINDS.get(status)
    if kind is None:  # quiet, or a status TrackShip added since: kept, no event
        return ledger.record(book, {**fulfillment, "shipment_status": status}, status, at)
    result = ledger.announce(
        connector, kind, status, fulfillment, at, meta, book, order=order, customer=customer
    )
    events.extend(result.events)
    return result.state or book


def _order_status(connector, kind, payload, parcels, now, meta, book, events, customer):
    """The store moved the order to a status its settings map to ``kind``.

    Every tracking number not yet past that point gets the event; an order
    without tracking numbers is one parcel standing for the whole order.
    """
    order = book.order
    if not parcels:
        whole = _whole_order(order, payload)
        known = bool(ledger.entry(book, whole["id"]))
        book = ledger.record(book, whole, None, None)
        if kind == "fulfillment.created" and not known:
            events.append(_created(connector, meta, whole, now, order, customer))
            book = ledger.record(book, whole, None, now)
        parcels = [whole]
    if kind == "fulfillment.created":
        return book  # tracking items were announced as fulfillments when they appeared
    for fulfillment in parcels:
        seen = ledger.entry(book, fulfillment["id"])
        if ledger.is_delivered(seen) or seen.get("kind") == kind:
            continue
        result = ledger.announce(
            connector,
            kind,
            payload.get("status"),
            fulfillment,
            now,
            meta,
            book,
            order=order,
            customer=customer,
        )
        events.extend(result.events)
        book = result.state or book
    return book


def _shipped_whole(book: OrderState, order: dict, payload: dict, now) -> OrderState:
    """A completed order without tracking numbers: one parcel, shipped when completed (no
    event of its own: ``order.fulfilled`` says it), so an estimate can follow it."""
    whole = _whole_order(order, payload)
    if ledger.entry(book, whole["id"]):
        return book
    shipped = _time(payload.get("date_completed_gmt")) or now
    return ledger.record(book, {**whole, "created_at": iso(shipped)}, None, shipped)


def _created(connector, meta, fulfillment, now, order, customer):
    return connector._event(
        "fulfillment.created",
        meta,
        fulfillment["id"],
        now,
        order=order,
        customer=customer,
        fulfillment=fulfillment,
    )


def _whole_order(order: dict, payload: dict) -> dict:
    fulfillment = canonical_fulfillment({}, order, payload)
    return {**fulfillment, "id": f"{order['id']}-{WHOLE_ORDER}", "created_at": None}


def _forget_removed(book: OrderState, current: set[str]) -> OrderState:
    """Tracking numbers the store removed no longer hold the order's delivery back, nor does
    the whole-order parcel once the store added tracking numbers."""
    table = {}
    for fid, row in book.extra["fulfillments"].items():
        whole = fid.endswith(f"-{WHOLE_ORDER}")
        gone = bool(current) if whole else fid not in current
        table[fid] = (
            {**row, "gone": True} if gone else {k: v for k, v in row.items() if k != "gone"}
        )
    return OrderState(order=book.order, extra={**book.extra, "fulfillments": table})
