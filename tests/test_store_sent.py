"""Recording a sent message (store/sent.py): one statement on PostgreSQL, two on SQLite,
the same rows either way; a lost lease still records the attempt, and the commit does
not wait for the disk."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from aftersale.store import actions as action_store
from aftersale.store import planning
from aftersale.store import shops as shop_store
from aftersale.store.sent import record_sent, record_sent_alone
from aftersale.store.tables import actions, messages
from tests.helpers import rows

SENT = {
    "recipient": "ana@example.com",
    "subject": "Thank you for your order",
    "message_id": "<action-1.1@example.com>",
    "provider_id": "<action-1.1@example.com>",
    "result": {"queued_as": "4XyZ"},
    "status_code": 250,
    "response": "250 2.0.0 queued",
    "duration_ms": 12,
}


def running_action(runtime, clock):
    now = clock.now()
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", "s.myshopify.com", now)
        row = {
            "shop_id": shop_id,
            "event_id": None,
            "rule": "thanks",
            "step": 0,
            "action_type": "email",
            "params": {"template": "thank_you"},
            "category": "transactional",
            "order_ref": "1",
            "customer_ref": "c1",
            "once_key": "thanks|1",
            "due_at": now,
            "cancel_on": [],
        }
        ((action_id, _),) = planning.create(conn, [row], now)
        claimed = action_store.start_many(conn, [action_id], now, timedelta(seconds=20))
    return claimed[action_id]


def test_a_sent_action_and_its_attempt_are_recorded_together(runtime, clock):
    action = running_action(runtime, clock)
    now = clock.now()
    with runtime.engine.begin() as conn:
        assert record_sent(conn, action, channel="email", now=now, **SENT) is True
        if conn.dialect.name == "postgresql":  # set inside the statement, for this transaction
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"

    (row,) = rows(runtime.engine, actions)
    assert (row.status, row.finished_at, row.updated_at) == ("sent", now, now)
    assert (row.recipient, row.subject, row.provider_id) == (
        SENT["recipient"],
        SENT["subject"],
        SENT["provider_id"],
    )
    assert row.result == SENT["result"] and row.lease_expires_at is None
    (attempt,) = rows(runtime.engine, messages)
    assert (attempt.action_id, attempt.shop_id, attempt.attempt) == (action.id, action.shop_id, 1)
    assert (attempt.channel, attempt.status, attempt.created_at) == ("email", "sent", now)
    for name in ("recipient", "subject", "message_id", "provider_id", "status_code", "response"):
        assert getattr(attempt, name) == SENT[name], name
    assert attempt.duration_ms == 12

    with runtime.engine.connect() as conn:  # the session default is untouched
        if conn.dialect.name == "postgresql":
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_lost_lease_leaves_the_action_but_records_the_attempt(runtime, clock):
    action = running_action(runtime, clock)
    later = clock.now() + timedelta(minutes=1)
    with runtime.engine.begin() as conn:  # the lease expired and the action is due again
        action_store.release_expired_leases(conn, later)
    with runtime.engine.begin() as conn:
        assert record_sent(conn, action, channel="email", now=later, **SENT) is False
    (row,) = rows(runtime.engine, actions)
    assert row.status == "scheduled" and row.provider_id is None
    statuses = [m.status for m in rows(runtime.engine, messages)]
    assert statuses == ["lost", "sent"]  # what release recorded, then the send that did go out


def test_recorded_alone_it_is_its_own_transaction_and_leaves_the_connection_as_it_was(
    runtime, clock
):
    """``record_sent_alone`` (what a worker calls): on PostgreSQL the one statement runs in
    autocommit, a single round trip; the rows are the same, nothing stays open, and the
    connection's isolation level is its default again (the next job reads as before)."""
    action = running_action(runtime, clock)
    with runtime.engine.connect() as conn:
        default = conn.get_isolation_level()
        assert record_sent_alone(conn, action, channel="email", now=clock.now(), **SENT) is True
        assert not conn.in_transaction()
        assert conn.get_isolation_level() == default
        if conn.dialect.name == "postgresql":
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            conn.rollback()
        # already sent: a second record loses the check-and-set but keeps the attempt
        assert record_sent_alone(conn, action, channel="email", now=clock.now(), **SENT) is False
    (row,) = rows(runtime.engine, actions)
    assert row.status == "sent" and row.provider_id == SENT["provider_id"]
    assert [m.status for m in rows(runtime.engine, messages)] == ["sent", "sent"]
