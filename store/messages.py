"""Send attempts: one row per try, with what the provider answered."""

from __future__ import annotations

import hmac
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from aftersale.core.steps import STEP_TYPES
from aftersale.store.sql import insert_ignore, pairs_in
from aftersale.store.tables import link_clicks, messages, suppressions

_INSERT_ATTEMPT = messages.insert()


#: how much of a provider's answer or an error an attempt keeps
ANSWER_LIMIT = 2000


def clipped(text: str | None) -> str | None:
    """An error or a provider's answer as an attempt row keeps it (empty as None)."""
    return (text or None) and text[:ANSWER_LIMIT]


def record_attempt(
    conn: Connection,
    *,
    action,
    channel: str,
    status: str,
    now: datetime,
    recipient=None,
    subject=None,
    message_id=None,
    provider_id=None,
    status_code=None,
    error=None,
    response=None,
    duration_ms=None,
) -> None:
    conn.execute(
        _INSERT_ATTEMPT,
        {
            "action_id": action.id,
            "shop_id": action.shop_id,
            "attempt": action.attempts,
            "channel": channel,
            "recipient": recipient,
            "subject": subject,
            "message_id": message_id,
            "status": status,
            "provider_id": provider_id,
            "status_code": status_code,
            "error": clipped(error),
            "response": clipped(response),
            "duration_ms": duration_ms,
            "created_at": now,
        },
    )


def for_action(conn: Connection, action_id: int):
    return conn.execute(
        select(messages).where(messages.c.action_id == action_id).order_by(messages.c.id)
    ).all()


#: suppression reasons that stop every message, not only marketing
BLOCKS_ALL = ("bounced", "complaint", "manual")


#: stored suppression addresses are ``h1:<hex>``: an HMAC of the address under a key derived
#: from SECRET_KEY, so the table keeps no readable address (rows written before hashing
#: hold the plain address, and a customer's erasure hashes those)
HASH_PREFIX = "h1:"


def address_hash(key: str, address: str) -> str:
    """The keyed hash stored for a suppressed address (lower-cased email or E.164 number).

    The HMAC key is derived from ``key`` (a SECRET_KEY) for this one purpose, so the
    hash cannot be recomputed without the secret and says nothing about links' keys.
    """
    derived = hmac.new(key.encode(), b"aftersale suppression addresses", "sha256").digest()
    digest = hmac.new(derived, normal_address(address).encode(), "sha256").hexdigest()
    return HASH_PREFIX + digest


def stored_forms(keys, address: str) -> list[str]:
    """Every form an address may be stored in: hashed with each key (current first), and plain
    for rows written before hashing."""
    return [address_hash(k, address) for k in keys if k] + [normal_address(address)]


_SUPPRESSION = select(suppressions.c.reason).where(
    suppressions.c.shop_id == bindparam("shop_id"),
    suppressions.c.channel == bindparam("channel"),
    suppressions.c.address.in_(bindparam("addresses", expanding=True)),
)


def suppression(
    conn: Connection, shop_id: int, channel: str, address: str, category: str, *, keys=()
) -> str | None:
    """The reason an address must not get this category of message, or None.

    ``keys`` are the SECRET_KEYs (current, previous): the address is looked up by its
    hash under each, and plain for rows stored before hashing.
    """
    row = conn.execute(
        _SUPPRESSION,
        {"shop_id": shop_id, "channel": channel, "addresses": stored_forms(keys, address)},
    ).first()
    return blocking(row.reason if row is not None else None, channel, category)


def blocking(reason: str | None, channel: str, category: str) -> str | None:
    """``reason`` when a suppression stored with it blocks this category of message."""
    if reason is None:
        return None
    # a STOP reply to a text opts the number out of every message from that sender, and
    # the SMS provider refuses them all, so an SMS unsubscribe blocks transactional texts too
    if reason in BLOCKS_ALL or category == "marketing" or opt_out_blocks_all(channel):
        return reason
    return None


def suppressions_of(conn: Connection, channel: str, wanted, *, keys=()) -> dict:
    """The stored reasons of many ``(shop id, address)`` pairs on one channel, in one query:
    {(shop id, normal address): reason, or None when not suppressed}."""
    forms: dict[tuple[int, str], tuple[int, str]] = {}
    for shop_id, address in wanted:
        for form in stored_forms(keys, address):
            forms.setdefault((shop_id, form), (shop_id, normal_address(address)))
    found: dict[tuple[int, str], str | None] = dict.fromkeys(forms.values())
    if not forms:
        return found
    rows = conn.execute(
        select(suppressions.c.shop_id, suppressions.c.address, suppressions.c.reason).where(
            suppressions.c.channel == channel,
            *pairs_in(suppressions.c.shop_id, suppressions.c.address, forms),
        )
    )
    for row in rows:
        pair = forms.get((row.shop_id, row.address))
        if pair is not None and found[pair] is None:
            found[pair] = row.reason
    return found


def suppress(
    conn: Connection,
    shop_id: int,
    channel: str,
    address: str,
    reason: str,
    source: str | None,
    now: datetime,
    *,
    keys=(),
) -> bool:
    """Stop messages to an address (all marketing, or everything for bounces); True if new
    or stronger.

    An address suppressed already keeps its reason unless the new one blocks more:
    a complaint stays a complaint when the same person also clicks unsubscribe, but
    an address that unsubscribed and then bounces becomes ``bounced``, so that order
    and shipping mail stop going to a mailbox that no longer exists. With ``keys``
    the address is stored as its keyed hash (the first key), never in the clear.
    """
    known = suppression(conn, shop_id, channel, address, "marketing", keys=keys)
    if known is not None:
        if reason not in BLOCKS_ALL or known in BLOCKS_ALL:
            return False
        conn.execute(
            update(suppressions)
            .where(
                suppressions.c.shop_id == shop_id,
                suppressions.c.channel == channel,
                suppressions.c.address.in_(stored_forms(keys, address)),
            )
            .values(reason=reason, source=source[:64] if source else None)
        )
        return True
    stored = address_hash(keys[0], address) if keys and keys[0] else normal_address(address)
    row = conn.execute(
        insert_ignore(conn, suppressions)
        .values(
            shop_id=shop_id,
            channel=channel,
            address=stored,
            reason=reason,
            source=source[:64] if source else None,
            created_at=now,
        )
        .returning(suppressions.c.id)
    ).first()
    return row is not None


def normal_address(address: str) -> str:
    """An address as suppressions compare it (lower-cased, trimmed)."""
    return address.strip().lower()


def record_click(conn: Connection, *, shop_id: int, action_id: int | None, kind: str, now) -> None:
    """One row per click on a signed link (review, help, unsubscribe), for reports."""
    conn.execute(
        link_clicks.insert().values(
            shop_id=shop_id, action_id=action_id or None, kind=kind, created_at=now
        )
    )


def opt_out_blocks_all(channel: str) -> bool:
    step = STEP_TYPES.get(channel)
    return bool(step and step.opt_out_blocks_all)
