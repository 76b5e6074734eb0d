"""Recording a sent message: the action becomes ``sent`` and its attempt is written, together.

This runs once per mail, so its round trips count. On PostgreSQL it is one
statement: a data-modifying CTE moves the action from ``running`` to
``sent`` (check-and-set, as ``actions.transition``), the INSERT writes the
attempt, and ``set_config('synchronous_commit', 'off', true)`` inside it
does what ``commit_without_flush_wait`` does with a SET LOCAL of its own
(see there for what that risks: nothing a crash of our process can lose).
Five round trips a mail (BEGIN, SET LOCAL, UPDATE, INSERT, COMMIT) became
three, and one with :func:`record_sent_alone`, which runs the statement as its own
transaction (autocommit): a single statement is atomic by itself, and the
local setting holds until its implicit commit. On SQLite the same two writes
run one after the other (its ``synchronous=NORMAL`` already commits without
waiting for the disk), in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from aftersale.store import actions as action_store
from aftersale.store import messages as message_store
from aftersale.store.actions import ActionStatus
from aftersale.store.sql import autocommit
from aftersale.store.tables import actions, messages

_SET = ("recipient", "subject", "provider_id", "result")
_ATTEMPT = (
    "recipient",
    "subject",
    "message_id",
    "provider_id",
    "status_code",
    "response",
    "duration_ms",
)


def record_sent_alone(conn: Connection, action, *, channel: str, now: datetime, **values) -> bool:
    """:func:`record_sent` as a transaction of its own, on a connection with none open.

    On PostgreSQL the one statement runs in autocommit, one round trip instead
    of BEGIN, statement, COMMIT: the job's thread waited on those for about a
    third of its time (py-spy, docs/performance.md). ``store/sql.autocommit`` puts the
    isolation level back whatever happens.
    """
    if conn.dialect.name != "postgresql":
        with conn.begin():
            return record_sent(conn, action, channel=channel, now=now, **values)
    with autocommit(conn):
        return record_sent(conn, action, channel=channel, now=now, **values)


def record_sent(conn: Connection, action, *, channel: str, now: datetime, **values) -> bool:
    """Record ``action`` as sent with ``values`` (recipient, subject, message_id,
    provider_id, result, status_code, response, duration_ms); False when the action was
    no longer ``running`` (its lease expired and another worker took it): the attempt is
    recorded either way, because the message did go out."""
    if conn.dialect.name == "postgresql":
        params = {name: values.get(name) for name in {*_SET, *_ATTEMPT}}
        params["response"] = message_store.clipped(params["response"])
        params.update(
            action_id=action.id,
            shop_id=action.shop_id,
            attempt=action.attempts,
            channel=channel,
            now=now,
        )
        # named p_*: a parameter named like a column would join the UPDATE's SET list
        params = {f"p_{name}": value for name, value in params.items()}
        return conn.execute(_postgres_statement(), params).scalar_one() == 1
    won = action_store.transition(
        conn,
        action.id,
        ActionStatus.RUNNING,
        ActionStatus.SENT,
        now,
        lease_expires_at=None,
        last_error=None,
        **{name: values.get(name) for name in _SET},
    )
    message_store.record_attempt(
        conn,
        action=action,
        channel=channel,
        status="sent",
        now=now,
        **{name: values.get(name) for name in _ATTEMPT},
    )
    return won


@cache
def _postgres_statement():
    """Built on first use, once per process (building it costs more than running it)."""
    quick = (
        select(func.set_config("synchronous_commit", "off", True).label("off"))
        .cte("quick")
        .prefix_with("MATERIALIZED")
    )
    moved = (
        update(actions)
        .where(
            actions.c.id == bindparam("p_action_id"),
            actions.c.status == ActionStatus.RUNNING.value,
            select(quick.c.off).scalar_subquery().is_not(None),
        )
        .values(
            status=ActionStatus.SENT.value,
            updated_at=bindparam("p_now"),
            finished_at=bindparam("p_now"),
            lease_expires_at=None,
            last_error=None,
            **{name: bindparam(f"p_{name}", type_=actions.c[name].type) for name in _SET},
        )
        .returning(actions.c.id)
        .cte("moved")
    )
    won = select(func.count()).select_from(moved).scalar_subquery()
    return (
        insert(messages)
        .values(
            action_id=bindparam("p_action_id"),
            shop_id=bindparam("p_shop_id"),
            attempt=bindparam("p_attempt"),
            channel=bindparam("p_channel"),
            status=literal("sent"),
            created_at=bindparam("p_now"),
            **{name: bindparam(f"p_{name}", type_=messages.c[name].type) for name in _ATTEMPT},
        )
        .add_cte(quick)
        .add_cte(moved)
        .returning(won.label("won"))
    )
