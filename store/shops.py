"""Shops: one row per store connected to Aftersale."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from aftersale.core.crypto import decrypt_json, encrypt_json
from aftersale.core.platform import ShopAccess
from aftersale.store.sql import insert_ignore
from aftersale.store.tables import deliveries, shops


def ensure_shop(conn: Connection, platform: str, domain: str, now: datetime) -> int:
    """The id of a shop, creating the row on first sight."""
    found = conn.execute(
        select(shops.c.id).where(shops.c.platform == platform, shops.c.domain == domain)
    ).scalar()
    if found is not None:
        return found
    conn.execute(
        insert_ignore(conn, shops).values(
            platform=platform, domain=domain, created_at=now, updated_at=now
        )
    )
    return conn.execute(
        select(shops.c.id).where(shops.c.platform == platform, shops.c.domain == domain)
    ).scalar_one()


def find_shop(conn: Connection, platform: str, domain: str):
    return conn.execute(
        select(shops).where(shops.c.platform == platform, shops.c.domain == domain)
    ).first()


_SHOP_BY_ID = select(shops).where(shops.c.id == bindparam("shop_id"))


def get_shop(conn: Connection, shop_id: int):
    return conn.execute(_SHOP_BY_ID, {"shop_id": shop_id}).first()


def save_credentials(
    conn: Connection, shop_id: int, secret_keys, credentials: dict, now: datetime
) -> None:
    """Store a shop's credentials (API tokens, webhook secrets) encrypted with SECRET_KEY."""

    conn.execute(
        shops.update()
        .where(shops.c.id == shop_id)
        .values(credentials=encrypt_json(secret_keys, credentials), updated_at=now)
    )


def update_credentials(
    conn: Connection, shop_id: int, secret_keys, changes: dict, now: datetime
) -> dict:
    """Merge ``changes`` into a shop's stored credentials; the merged credentials."""
    row = get_shop(conn, shop_id)
    merged = {**credentials_of(row, secret_keys), **changes}
    save_credentials(conn, shop_id, secret_keys, merged, now)
    return merged


def credentials_of(shop_row, secret_keys) -> dict:
    """The decrypted credentials of a shop row ({} when none are stored)."""

    return decrypt_json(secret_keys, shop_row.credentials)


def access(shop_row, config):
    """What platform calls need for this shop: domain, decrypted credentials, API base override.

    ``settings["api_url"]`` on the shop row points the platform calls somewhere
    else than the platform's own API (a proxy, or a local stand-in in tests).
    """

    settings = shop_row.settings or {}
    return ShopAccess(
        domain=shop_row.domain,
        credentials=credentials_of(shop_row, config.secret_keys),
        api_url=settings.get("api_url"),
    )


def record_webhooks(engine, shop_id: int, now: datetime, error: str | None) -> None:
    """Remember the outcome of the shop's last webhook registration or listing (None: healthy),
    in its own short transaction (called after the platform answered)."""
    with engine.begin() as conn:
        conn.execute(
            shops.update()
            .where(shops.c.id == shop_id)
            .values(webhooks_checked_at=now, webhooks_error=error[:500] if error else None)
        )


def overview(conn: Connection, domain: str | None = None) -> list:
    """Every shop (or those named ``domain``) with the time of its last delivery, by id."""
    last = (
        select(deliveries.c.shop_id, func.max(deliveries.c.received_at).label("last_delivery_at"))
        .group_by(deliveries.c.shop_id)
        .subquery()
    )
    query = (
        select(shops, last.c.last_delivery_at)
        .select_from(shops.outerjoin(last, last.c.shop_id == shops.c.id))
        .order_by(shops.c.id)
    )
    if domain is not None:
        query = query.where(shops.c.domain == domain)
    return conn.execute(query).all()


def install_placeholder(
    conn: Connection,
    platform: str,
    domain: str,
    secret_keys,
    credentials: dict,
    now: datetime,
    *,
    reactivate: bool = True,
) -> tuple[int, bool]:
    """Make ``domain`` a shop that installed the app, with stand-in ``credentials`` (no API
    token), for development and tests: the receiver accepts Shopify webhooks only from
    installed shops. (shop id, whether this changed anything).

    A shop already active with credentials is left alone, and real credentials are never
    replaced. ``reactivate=False`` leaves every known shop as it is (an uninstalled shop
    stays uninstalled).
    """
    row = find_shop(conn, platform, domain)
    if row is not None and (not reactivate or (row.status == "active" and row.credentials)):
        return row.id, False
    shop_id = row.id if row is not None else ensure_shop(conn, platform, domain, now)
    if row is None or not row.credentials:  # not decrypted: the server's key may differ
        save_credentials(conn, shop_id, secret_keys, credentials, now)
    if row is not None and row.status != "active":
        conn.execute(
            shops.update().where(shops.c.id == shop_id).values(status="active", updated_at=now)
        )
    return shop_id, True
