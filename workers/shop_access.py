"""A shop's platform access with a token that works: renewed before it expires, and once
more when the platform answers 401.

Shopify's expiring offline tokens last an hour and come with a refresh token
that Shopify replaces on every use; a store connected with the client
credentials grant (``shops add-shopify``) has no refresh token and simply asks
for a new token with its app's client id and secret. Either way the new
token is stored (encrypted) before it is used, so a crash right after a
refresh cannot lose the only valid refresh token.

Renewal runs on its own: no database connection is held while it waits for
Shopify (on SQLite a read connection already holds the single-writer lock,
and the renewal's write would wait for it forever), and a Redis lock per shop
lets one process renew while the others wait and then read what it stored.
A refused renewal is permanent: the shop is marked (``shops.access_error``,
shown by ``aftersale shops list``) and the error says to install again.

WooCommerce keys do not expire: its access is returned as stored.

A shop also needs a new install when the loaded rules need scopes its grant
lacks (a rule adding ``tag_order`` needs ``write_orders``):
:func:`reinstall_reason` says why for ``aftersale shops list``, and
:func:`warn_reinstalls` logs it once per shop when a worker starts.
"""

from __future__ import annotations

from contextlib import contextmanager

from redis.exceptions import LockError

from aftersale.connectors.shopify import oauth
from aftersale.core import logs
from aftersale.core.crypto import CredentialsUnreadable
from aftersale.core.errors import PermanentError, TransientError
from aftersale.core.platform import ShopAccess
from aftersale.rules import RulesInvalid
from aftersale.rules.scopes import shopify_needs
from aftersale.store import shops as shop_store
from aftersale.store.tables import shops

log = logs.get_logger("aftersale.shop_access")
#: seconds a renewal may hold its shop's lock (two token requests fit easily)
LOCK_SECONDS = 60
#: seconds another process waits for that lock before trying the call later
LOCK_WAIT = 30

__all__ = [
    "AccessRefused",
    "call",
    "current",
    "install_hint",
    "missing_scopes",
    "reinstall_reason",
    "renew",
    "warn_reinstalls",
]


class AccessRefused(PermanentError):
    """The platform refused to renew the shop's token: only a new install helps."""


def call(runtime, shop_row, fn):
    """``fn(access)`` with a token that works: renewed first when it expires within minutes,
    and renewed once more and retried when the platform answers 401."""
    access = current(runtime, shop_row)
    try:
        return fn(access)
    except PermanentError as exc:
        if exc.status_code != 401 or isinstance(exc, AccessRefused):
            raise
        credentials = access.credentials
        if shop_row.platform != "shopify" or not oauth.renewable(credentials):
            raise
        log.info("shop.token_rejected", shop=shop_row.domain)
        return fn(renew(runtime, shop_row.id, rejected=credentials.get("access_token")))


def current(runtime, shop_row) -> ShopAccess:
    """The shop's access, renewed first when its Shopify token expires within minutes."""
    credentials = shop_store.credentials_of(shop_row, runtime.config.secret_keys)
    if (
        shop_row.platform == "shopify"
        and oauth.renewable(credentials)
        and oauth.expires_soon(credentials, runtime.clock.now())
    ):
        return renew(runtime, shop_row.id)
    return shop_store.access(shop_row, runtime.config)


def renew(runtime, shop_id: int, *, rejected: str | None = None) -> ShopAccess:
    """A new token for the shop, stored before it is returned.

    ``rejected`` is the token the platform just answered 401 to; without it the
    token is renewed only if it still expires soon. Either way, a token another
    process stored meanwhile is used instead of asking again.
    """
    with _shop_lock(runtime, shop_id):
        with runtime.engine.connect() as conn:
            row = shop_store.get_shop(conn, shop_id)
        if row is None:
            raise PermanentError(f"shop {shop_id} is gone")
        credentials = shop_store.credentials_of(row, runtime.config.secret_keys)
        now = runtime.clock.now()
        renewed_meanwhile = (
            credentials.get("access_token") != rejected
            if rejected is not None
            else not oauth.expires_soon(credentials, now)
        )
        if renewed_meanwhile:
            runtime.forget_shops()
            return shop_store.access(row, runtime.config)
        try:
            answer = _ask(runtime, row, credentials)
        except PermanentError as exc:
            raise _refused(runtime, row, credentials, exc) from exc
        changes = oauth.credentials_from(answer, now)
        with runtime.engine.begin() as conn:
            shop_store.update_credentials(conn, shop_id, runtime.config.secret_keys, changes, now)
            conn.execute(shops.update().where(shops.c.id == shop_id).values(access_error=None))
            row = shop_store.get_shop(conn, shop_id)
    runtime.forget_shops()
    log.info("shop.token_renewed", shop=row.domain, expires_at=changes.get("expires_at"))
    return shop_store.access(row, runtime.config)


def _ask(runtime, row, credentials: dict) -> dict:
    """Shopify's answer to a refresh (install link) or a client credentials grant."""
    config = runtime.config
    session = runtime.platform_session()
    admin_url = (row.settings or {}).get("api_url")
    if credentials.get("client_secret"):
        return oauth.client_credentials(
            session,
            row.domain,
            credentials["client_id"],
            credentials["client_secret"],
            admin_url=admin_url,
        )
    if not config.shopify_api_key or not config.shopify_api_secrets:
        raise PermanentError("SHOPIFY_API_KEY and SHOPIFY_API_SECRET are needed to renew tokens")
    return oauth.refresh_access(
        session,
        row.domain,
        config.shopify_api_key,
        config.shopify_api_secrets[0],
        credentials["refresh_token"],
        admin_url=admin_url,
    )


def _refused(runtime, row, credentials: dict, exc: PermanentError) -> AccessRefused:
    """Mark the shop as needing a new install; the error that says so."""
    hint = install_hint(runtime, row.domain, credentials)
    message = f"Shopify refused to renew the access token of {row.domain} ({exc}); {hint}"
    with runtime.engine.begin() as conn:
        conn.execute(
            shops.update()
            .where(shops.c.id == row.id)
            .values(access_error=str(exc)[:500], updated_at=runtime.clock.now())
        )
    runtime.forget_shops()
    log.warning("shop.token_refused", shop=row.domain, error=str(exc), hint=hint)
    return AccessRefused(message, status_code=exc.status_code, response=exc.response)


def install_hint(runtime, domain: str, credentials: dict) -> str:
    """What gives the shop a new grant: the install link, or ``shops add-shopify`` again."""
    if credentials.get("client_secret"):
        return f"run again: aftersale shops add-shopify --shop {domain} --client-id ..."
    return f"install the app again: {runtime.config.public_url}/shopify/install?shop={domain}"


@contextmanager
def _shop_lock(runtime, shop_id: int):
    """One renewal per shop at a time, across processes (Shopify rotates the refresh token)."""
    name = f"{runtime.config.queue_prefix}:shop-token:{shop_id}"
    lock = runtime.redis.lock(name, timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT)
    if not lock.acquire():
        raise TransientError(f"shop {shop_id}: another process is renewing its token")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:  # held past LOCK_SECONDS: it expired, nothing to release
            log.warning("shop.token_lock_expired", shop_id=shop_id)


# -- scopes ------------------------------------------------------------------------------


def missing_scopes(needed, granted: str | None) -> list[str]:
    """The scopes in ``needed`` that a grant (Shopify's comma-separated ``scope``) lacks;
    ``write_X`` includes ``read_X``, as Shopify grants it."""
    have = {s.strip() for s in (granted or "").split(",") if s.strip()}
    have |= {f"read_{s.removeprefix('write_')}" for s in have if s.startswith("write_")}
    return sorted(set(needed) - have)


def reinstall_reason(runtime, shop_row, credentials: dict | None = None) -> str | None:
    """Why the shop must be installed again (its token was refused, or the rules need scopes
    it did not grant); None when it need not. Shops without a Shopify grant: None."""
    if shop_row.platform != "shopify" or shop_row.status != "active":
        return None
    if shop_row.access_error:
        return f"token refused: {shop_row.access_error}"
    if credentials is None:
        credentials = shop_store.credentials_of(shop_row, runtime.config.secret_keys)
    if "scope" not in credentials:  # no grant recorded (a development placeholder)
        return None
    try:
        needs = shopify_needs(runtime.rules, shop_row.domain)
    except RulesInvalid:  # said where the rules are loaded; the grant cannot be judged
        return None
    lacking = missing_scopes(needs.scopes, credentials["scope"])
    return f"the rules need scopes {', '.join(lacking)}" if lacking else None


def warn_reinstalls(runtime) -> int:
    """Log one warning per active Shopify shop that must install again, with the link that
    does it (a worker calls this at start); how many were found."""
    with runtime.engine.connect() as conn:
        rows = [r for r in shop_store.overview(conn) if r.platform == "shopify"]
    found = 0
    for row in rows:
        try:
            credentials = shop_store.credentials_of(row, runtime.config.secret_keys)
        except CredentialsUnreadable:
            log.error("shop.credentials_unreadable", shop=row.domain)
            continue
        reason = reinstall_reason(runtime, row, credentials)
        if reason:
            found += 1
            log.warning(
                "shop.needs_reinstall",
                shop=row.domain,
                reason=reason,
                hint=install_hint(runtime, row.domain, credentials),
            )
    return found
