"""What a job's actions read alike, read once for the job: events, customers, orders.

A job carries up to 25 actions; reading each one's event, customer row, order
state and the customer's earlier orders on its own was four of the database
round trips every mail cost. Events never change once stored, so the job's
copy is always right. A customer or an order can change while the job runs (a
new address, consent withdrawn, data redacted, the order cancelled), and the
re-check before each send must see that: the job's copies are used only while
they are younger than :data:`FRESH_S`, after which each action reads its own
again as before. A copy a second old is what a worker a second faster would
have read.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from aftersale.core.addresses import one_email
from aftersale.core.events import Event
from aftersale.store import action_queries
from aftersale.store import events as event_store
from aftersale.store import messages as message_store
from aftersale.store import state as state_store

#: how old the job's customer and order rows may be when an action is checked before its send
FRESH_S = 1.0


class JobReads:
    """Events, customers, orders and order histories of a job's actions, with a fallback to
    one read per action."""

    def __init__(
        self,
        events: dict | None = None,
        customers: dict | None = None,
        known=(),
        orders: dict | None = None,
        histories: dict | None = None,
        suppressions: dict | None = None,
    ):
        self.events: dict[int, Event] = events or {}
        self.customers: dict[tuple[int, str], object] = customers or {}
        self.orders: dict[tuple[int, str], dict] = orders or {}
        self.histories: dict[tuple[int, str], list] = histories or {}
        #: (shop id, normal email address) -> the stored suppression reason, or None
        self.suppressions: dict[tuple[int, str], str | None] = suppressions or {}
        self._known = set(known)
        self._read_at = time.monotonic()

    @classmethod
    def none(cls) -> JobReads:
        """Nothing read ahead: every action reads its own rows."""
        return cls()

    @classmethod
    def read(cls, conn: Connection, actions: list, *, secrets=()) -> JobReads:
        """Five queries for the whole job: its events, then their customers, the customers'
        orders (history facts count them), the orders' current states, and the email
        suppressions of the addresses its mails will likely go to (the events' and the
        customers' addresses; a mail to another reads its own). ``secrets``: the SECRET_KEYs
        suppressed addresses are hashed with."""
        rows = action_queries.events_by_id(conn, [a.event_id for a in actions if a.event_id])
        events = {}
        for event_id, row in rows.items():
            try:
                events[event_id] = Event.from_dict(row.payload)
            except (KeyError, TypeError, ValueError):
                continue  # its action reads it alone and fails alone, as it always did
        keys = {(a.shop_id, _customer_ref(a, events)) for a in actions}
        keys = {key for key in keys if key[1]}
        buyers = {(a.shop_id, e.customer_ref) for a in actions if (e := events.get(a.event_id))}
        buyers = {key for key in buyers if key[1]}
        orders = {(a.shop_id, a.order_ref) for a in actions if a.order_ref}
        states = action_queries.current_orders(conn, orders)
        customers = action_queries.customers_by_ref(conn, keys)
        addresses = _likely_addresses(actions, events, customers)
        return cls(
            events,
            customers,
            keys,
            orders={key: states.get(key) for key in orders},  # None: no state stored
            histories=event_store.customers_orders(conn, buyers),
            suppressions=message_store.suppressions_of(conn, "email", addresses, keys=secrets),
        )

    def event(self, conn: Connection, event_id: int) -> Event | None:
        """The stored event, parsed; None when it is gone."""
        event = self.events.get(event_id)
        if event is None:
            row = event_store.get_event(conn, event_id)
            event = Event.from_dict(row.payload) if row is not None else None
        return event

    def customer(self, conn: Connection, shop_id: int, ref: str):
        """The customer row (None when unknown), the job's copy while it is fresh."""
        key = (shop_id, ref)
        if key in self._known and self._fresh():
            return self.customers.get(key)
        return state_store.get_customer(conn, shop_id, ref)

    def order(self, conn: Connection, shop_id: int, ref: str | None) -> dict | None:
        """The order's current state (None when unknown), the job's copy while it is fresh."""
        if ref and (shop_id, ref) in self.orders and self._fresh():
            return self.orders[(shop_id, ref)]
        return action_queries.current_order(conn, shop_id, ref)

    def customer_orders(self, conn: Connection, shop_id: int, ref: str) -> list:
        """The customer's stored orders, oldest first, the job's copy while it is fresh."""
        if (shop_id, ref) in self.histories and self._fresh():
            return self.histories[(shop_id, ref)]
        return event_store.customer_orders(conn, shop_id, ref)

    def suppression(
        self, conn: Connection, shop_id: int, channel: str, address: str, category: str, *, keys=()
    ) -> str | None:
        """``messages.suppression``, from the job's copy while it is fresh."""
        pair = (shop_id, message_store.normal_address(address))
        if channel == "email" and pair in self.suppressions and self._fresh():
            return message_store.blocking(self.suppressions[pair], channel, category)
        return message_store.suppression(conn, shop_id, channel, address, category, keys=keys)

    def _fresh(self) -> bool:
        return time.monotonic() - self._read_at < FRESH_S


def _customer_ref(action, events: dict) -> str | None:
    """The ref the action is checked against: its own, else its event's (as a run does)."""
    if action.customer_ref:
        return action.customer_ref
    event = events.get(action.event_id)
    return event.customer_ref if event is not None else None


def _likely_addresses(actions, events: dict, customers: dict) -> set[tuple[int, str]]:
    """(shop id, address) of each action's event's order and customer, and of its customer
    row: where its mail goes unless its step names another address."""
    found = set()
    for action in actions:
        event = events.get(action.event_id)
        candidates = []
        if event is not None:
            candidates += [(event.order or {}).get("email"), (event.customer or {}).get("email")]
            row = customers.get((action.shop_id, _customer_ref(action, events)))
            candidates.append(getattr(row, "email", None))
        for raw in candidates:
            address = one_email(raw) if isinstance(raw, str) and raw else None
            if address:
                found.add((action.shop_id, address))
    return found
