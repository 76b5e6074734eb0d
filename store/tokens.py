"""Single-use tokens: remember which ones were spent, in the database.

A signed token (itsdangerous) proves where it came from and how old it is,
but not that it is used only once. Where one use must be the only use (the
WooCommerce key exchange's ``user_id``: a second POST would replace the
store's API key with someone else's), the token is recorded here in the same
transaction as what it authorizes. The database, not a process's memory,
holds the record, so a replay to another web process or after a restart is
refused too, and two racing requests cannot both win: the primary key lets
exactly one insert through.

Only a SHA-256 digest of the token is kept. ``expires_at`` is when the token
stops being valid anyway; :func:`prune` deletes rows past it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.engine import Connection

from aftersale.store.sql import insert_ignore
from aftersale.store.tables import consumed_tokens


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def consume(
    conn: Connection, purpose: str, token: str, *, now: datetime, expires_at: datetime
) -> bool:
    """Record ``token`` as used for ``purpose``: True the first time, False on every later call.

    Call it inside the transaction that acts on the token, so a failure there
    leaves the token unspent.
    """
    stmt = (
        insert_ignore(conn, consumed_tokens)
        .values(purpose=purpose, digest=digest(token), consumed_at=now, expires_at=expires_at)
        .returning(consumed_tokens.c.digest)
    )
    return conn.execute(stmt).first() is not None


def prune(conn: Connection, now: datetime) -> int:
    """Delete the records of tokens that expired before ``now``; how many were deleted.

    Safe at any time: an expired token is refused by its signature's age
    before its record is looked at.
    """
    return conn.execute(delete(consumed_tokens).where(consumed_tokens.c.expires_at < now)).rowcount
