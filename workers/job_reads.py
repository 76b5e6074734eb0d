"""What a job's actions read alike, read once for the job: their events and customers.

A job carries up to 25 actions; reading each one's event and customer row
on its own was two of the database round trips every mail cost. Events never
change once stored, so the job's copy is always right. A customer can change
while the job runs (a new address, consent withdrawn, data redacted), and the
re-check before each send must see that: the job's copy is used only while it
is younger than :data:`CUSTOMER_FRESH_S`, after which each action reads its
customer again as before.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection

from aftersale.core.events import Event
from aftersale.store import action_queries
from aftersale.store import events as event_store
from aftersale.store import state as state_store

#: how old the job's customer rows may be when an action is checked before its send
CUSTOMER_FRESH_S = 1.0


class JobReads:
    """Events and customers of a job's actions, with a fallback to one read per action."""

    def __init__(self, events: dict | None = None, customers: dict | None = None, known=()):
        self.events: dict[int, Event] = events or {}
        self.customers: dict[tuple[int, str], object] = customers or {}
        self._known = set(known)
        self._read_at = time.monotonic()

    @classmethod
    def none(cls) -> JobReads:
        """Nothing read ahead: every action reads its own rows."""
        return cls()

    @classmethod
    def read(cls, conn: Connection, actions: list) -> JobReads:
        """Two queries for the whole job: its events, then their customers."""
        rows = action_queries.events_by_id(conn, [a.event_id for a in actions if a.event_id])
        events = {}
        for event_id, row in rows.items():
            try:
                events[event_id] = Event.from_dict(row.payload)
            except (KeyError, TypeError, ValueError):
                continue  # its action reads it alone and fails alone, as it always did
        keys = {(a.shop_id, _customer_ref(a, events)) for a in actions}
        keys = {key for key in keys if key[1]}
        return cls(events, action_queries.customers_by_ref(conn, keys), keys)

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
        if key in self._known and time.monotonic() - self._read_at < CUSTOMER_FRESH_S:
            return self.customers.get(key)
        return state_store.get_customer(conn, shop_id, ref)


def _customer_ref(action, events: dict) -> str | None:
    """The ref the action is checked against: its own, else its event's (as a run does)."""
    if action.customer_ref:
        return action.customer_ref
    event = events.get(action.event_id)
    return event.customer_ref if event is not None else None
