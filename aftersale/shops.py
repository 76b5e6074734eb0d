"""Connecting stores: what the CLI and the web key exchange share.

A WooCommerce store is connected with a REST API key (consumer key and
secret), stored encrypted with the shop; Aftersale then creates its webhooks
through the store's API with a secret it generates, so every delivery can be
verified. Two ways in: ``aftersale shops add-woocommerce`` with a key made in
WooCommerce > Settings > Advanced > REST API, or WooCommerce's own key
exchange (``/wc-auth/v1/authorize``), where the store owner clicks "Approve"
and the store posts a fresh key to ``/woocommerce/auth-callback``.

What ``aftersale shops list|show|remove`` and ``webhooks list`` show of shops
on both platforms is here too (:func:`overview`, :func:`remove_shop`,
:func:`list_woocommerce_webhooks`); the Shopify side of installing and
subscribing is ``aftersale.shopify_install``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from aftersale.connectors.woocommerce import shop_domain
from aftersale.connectors.woocommerce.api import (
    CATALOG_TOPICS,
    WEBHOOK_TOPICS,
    WooCommerceAPI,
    new_webhook_secret,
)
from aftersale.core import logs
from aftersale.core.crypto import CredentialsUnreadable
from aftersale.core.errors import DeliveryFailed
from aftersale.core.links import ClockSigner
from aftersale.rules.catalog_facts import uses_catalog
from aftersale.store import privacy as privacy_store
from aftersale.store import shops as shop_store
from aftersale.store import tokens as token_store
from aftersale.store.tables import shops
from aftersale.workers import job_runtime as jobs
from aftersale.workers import shop_access

log = logs.get_logger("aftersale.shops")
#: how long an authorize link is good for: the owner approves within minutes
AUTHORIZE_MAX_AGE = 3600
#: the consumed_tokens purpose of the key exchange's user_id
CONNECT_PURPOSE = "woocommerce-connect"


class ConnectError(Exception):
    """A store could not be connected; the message says why and what to do."""


def add_woocommerce(runtime, url: str, key: str, secret: str) -> tuple[int, str]:
    """Store (or replace) a WooCommerce store's API key; (shop id, domain)."""
    domain, base = _checked_store(url, key, secret)
    with runtime.engine.begin() as conn:
        shop_id = _save_key(runtime, conn, domain, base, key, secret)
    log.info("shop.connected", platform="woocommerce", shop=domain)
    return shop_id, domain


def _checked_store(url: str, key: str, secret: str) -> tuple[str, str]:
    """(domain, base URL) of a store whose key looks like a REST API key; else ConnectError."""
    domain = shop_domain(url)
    if not domain:
        raise ConnectError(f"{url!r} is not a store address, e.g. https://shop.example.com")
    if not key.startswith("ck_") or not secret.startswith("cs_"):
        raise ConnectError("the key starts with ck_ and the secret with cs_ (REST API keys)")
    base = url.strip().rstrip("/")
    if "//" not in base:
        base = f"https://{base}"
    return domain, base


def _save_key(runtime, conn, domain: str, base: str, key: str, secret: str) -> int:
    now = runtime.clock.now()
    shop_id = shop_store.ensure_shop(conn, "woocommerce", domain, now)
    shop_store.update_credentials(
        conn,
        shop_id,
        runtime.config.secret_keys,
        {"url": base, "consumer_key": key, "consumer_secret": secret},
        now,
    )
    conn.execute(
        shops.update()
        .where(shops.c.id == shop_id)
        .values(status="active", installed_at=now, access_error=None)
    )
    return shop_id


def delivery_url(runtime, domain: str) -> str:
    """Where the store's webhooks post: one URL per shop, so the shop is known from the URL."""
    return f"{runtime.config.public_url}/webhooks/woocommerce/{domain}"


def register_woocommerce_webhooks(runtime, domain: str) -> dict:
    """Create or re-activate the store's webhooks; {topic: (what was done, webhook id)}.

    The webhook secret is generated once per shop and kept; registering again
    reuses it, so webhooks already active keep working.
    """

    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        shop = shop_store.find_shop(conn, "woocommerce", domain)
        if shop is None:
            raise ConnectError(
                f"no WooCommerce shop {domain!r}; add it first: aftersale shops add-woocommerce"
            )
        credentials = shop_store.credentials_of(shop, runtime.config.secret_keys)
        secret = credentials.get("webhook_secret")
        if not secret:
            secret = new_webhook_secret()
            shop_store.update_credentials(
                conn, shop.id, runtime.config.secret_keys, {"webhook_secret": secret}, now
            )
            shop = shop_store.find_shop(conn, "woocommerce", domain)
    api = WooCommerceAPI(shop_store.access(shop, runtime.config), runtime.platform_session())
    try:
        done = api.register_webhooks(delivery_url(runtime, domain), secret, woo_topics(runtime))
    except DeliveryFailed as exc:
        shop_store.record_webhooks(runtime.engine, shop.id, runtime.clock.now(), str(exc))
        raise
    shop_store.record_webhooks(runtime.engine, shop.id, runtime.clock.now(), None)
    log.info(
        "shop.webhooks_registered",
        shop=domain,
        **{
            what: sum(1 for w, _ in done.values() if w == what)
            for what in ("created", "reactivated", "unchanged")
        },
    )
    return done


def list_woocommerce_webhooks(runtime, domain: str) -> tuple[list[dict], list[str]]:
    """The store's webhooks as WooCommerce lists them, and what is wrong with Aftersale's
    (a topic missing, or not active: WooCommerce disables one after 5 failures in a row);
    recorded as the shop's webhook health."""
    shop, api = _store_api(runtime, domain)
    try:
        hooks = api.webhooks()
    except DeliveryFailed as exc:
        shop_store.record_webhooks(runtime.engine, shop.id, runtime.clock.now(), str(exc))
        raise
    url = delivery_url(runtime, domain)
    ours = [h for h in hooks if h.get("delivery_url") == url]
    problems = []
    for topic in woo_topics(runtime):
        statuses = [h.get("status") for h in ours if h.get("topic") == topic]
        if not statuses:
            problems.append(f"{topic}: no webhook")
        elif "active" not in statuses:
            problems.append(f"{topic}: {statuses[0]}")
    error = "; ".join(problems)[:500] or None
    shop_store.record_webhooks(runtime.engine, shop.id, runtime.clock.now(), error)
    return hooks, problems


def remove_woocommerce_webhooks(runtime, domain: str) -> list:
    """Delete the store's webhooks that post here; the ids deleted. Raises ConnectError for
    an unknown store, DeliveryFailed when WooCommerce refused or stayed unavailable."""
    _, api = _store_api(runtime, domain)
    removed = api.remove_webhooks(delivery_url(runtime, domain))
    log.info("woocommerce.webhooks_removed", shop=domain, removed=len(removed))
    return removed


def _store_api(runtime, domain: str):
    """(shop row, WooCommerceAPI) of a connected store; ConnectError for an unknown one."""
    with runtime.engine.connect() as conn:
        shop = shop_store.find_shop(conn, "woocommerce", domain)
    if shop is None:
        raise ConnectError(f"no WooCommerce shop {domain!r}")
    return shop, WooCommerceAPI(shop_store.access(shop, runtime.config), runtime.platform_session())


def woo_topics(runtime) -> tuple[str, ...]:
    """The WooCommerce topics a shop needs: orders and customers, and products when the
    loaded rules use the product catalog (issue 25)."""
    if uses_catalog(runtime.rules):
        return WEBHOOK_TOPICS + CATALOG_TOPICS
    return WEBHOOK_TOPICS


# -- every platform: list, show, remove ------------------------------------------------


@dataclass(frozen=True)
class ShopView:
    """One shop as ``aftersale shops list|show`` shows it (no secrets)."""

    id: int
    platform: str
    domain: str
    status: str  # active, uninstalled, or needs reinstall
    installed_at: datetime | None
    webhooks: str  # healthy, unchecked, or what was wrong at the last check
    webhooks_checked_at: datetime | None
    last_delivery_at: datetime | None
    created_at: datetime
    reinstall: str | None  # why the shop must install again
    hint: str | None  # what does it


def overview(runtime, domain: str | None = None) -> list[ShopView]:
    """Every shop, or the one(s) named ``domain`` (an address or a bare host)."""
    wanted = None if domain is None else _host(domain)
    with runtime.engine.connect() as conn:
        rows = shop_store.overview(conn, wanted)
    return [_view(runtime, row) for row in rows]


def _host(domain: str) -> str:
    """``https://Shop.Example.com/`` -> ``shop.example.com``; a bare name is lower-cased."""
    return shop_domain(domain) or domain.strip().lower()


def _view(runtime, row) -> ShopView:
    try:
        credentials = shop_store.credentials_of(row, runtime.config.secret_keys)
    except CredentialsUnreadable:
        credentials = {}
        reason = "stored credentials cannot be decrypted with SECRET_KEY"
    else:
        reason = shop_access.reinstall_reason(runtime, row, credentials)
    if row.webhooks_checked_at is None:
        webhooks = "unchecked"
    else:
        webhooks = f"no: {row.webhooks_error}" if row.webhooks_error else "healthy"
    hint = shop_access.install_hint(runtime, row.domain, credentials) if reason else None
    if reason and row.platform == "woocommerce":
        hint = f"connect it again: aftersale shops connect-woocommerce --url {row.domain}"
    return ShopView(
        id=row.id,
        platform=row.platform,
        domain=row.domain,
        status="needs reinstall" if reason else row.status,
        installed_at=row.installed_at,
        webhooks=webhooks,
        webhooks_checked_at=row.webhooks_checked_at,
        last_delivery_at=row.last_delivery_at,
        created_at=row.created_at,
        reinstall=reason,
        hint=hint,
    )


def remove_shop(runtime, shop_id: int) -> dict:
    """Delete every row of the shop, as Shopify's ``shop/redact`` does; counts by table.

    Nothing is asked of the platform here: ``aftersale shops remove`` first deletes
    the shop's webhooks there (:func:`remove_woocommerce_webhooks`,
    ``shopify_install.remove_shopify_webhooks``), while the credentials still exist.
    """
    with runtime.engine.begin() as conn:
        counts = privacy_store.delete_shop(conn, shop_id)
    runtime.forget_shops()
    log.warning("shop.removed", shop_id=shop_id, rows=counts)
    return counts


# -- the key exchange -------------------------------------------------------------


def _serializer(runtime) -> URLSafeTimedSerializer:
    # stamped with the runtime's clock, the one consumed tokens are pruned by
    return URLSafeTimedSerializer(
        list(runtime.config.secret_keys),
        salt="woocommerce-connect",
        signer=ClockSigner,
        signer_kwargs={"clock": runtime.clock},
    )


def authorize_url(runtime, store_url: str) -> str:
    """The link a store owner opens to approve Aftersale in their WooCommerce admin.

    ``user_id`` is a signed token naming the store, so the callback knows which
    store a posted key belongs to and that the request started here.
    """
    domain = shop_domain(store_url)
    if not domain:
        raise ConnectError(f"{store_url!r} is not a store address")
    base = store_url.strip().rstrip("/")
    if "//" not in base:
        base = f"https://{base}"
    token = _serializer(runtime).dumps({"url": base})
    public = runtime.config.public_url
    query = urlencode(
        {
            "app_name": "Aftersale",
            "scope": "read_write",
            "user_id": token,
            "return_url": f"{public}/woocommerce/connected",
            "callback_url": f"{public}/woocommerce/auth-callback",
        }
    )
    return f"{base}/wc-auth/v1/authorize?{query}"


def _canonical(token: str) -> str:
    """One spelling per verified token, for the single-use record.

    The signature part is base64 that itsdangerous decodes leniently: padding
    ``=``, stray characters and the spare low bits of the last character are
    ignored, so ``token + "="`` verifies as well as ``token``. The signed part
    (payload and timestamp) is compared byte for byte by the HMAC, so it is
    already canonical; the signature is re-encoded from its bytes.
    """
    signed, _, signature = token.rpartition(".")
    return f"{signed}.{base64_encode(base64_decode(signature)).decode()}"


def accept_keys(runtime, posted: dict) -> tuple[int, str]:
    """The store's POST to the callback: check the token, store the key; (shop id, domain).

    The token is single-use: it is recorded as consumed in the transaction
    that stores the key, so whoever saw it (a proxy log, the browser history
    of the authorize page) cannot post it again within its hour and swap the
    store's key for their own. Expired records are pruned on the way.
    """
    token = posted.get("user_id")
    try:
        if not isinstance(token, str):
            raise BadData("user_id is not a string")
        claims, signed_at = _serializer(runtime).loads(
            token, max_age=AUTHORIZE_MAX_AGE, return_timestamp=True
        )
    except (BadData, ValueError, OverflowError, OSError) as exc:
        raise ConnectError("the user_id token is invalid or expired; start again") from exc
    url = claims.get("url") if isinstance(claims, dict) else None
    if not isinstance(url, str):
        raise ConnectError("the user_id token is invalid or expired; start again")
    key, secret = posted.get("consumer_key"), posted.get("consumer_secret")
    if not isinstance(key, str) or not isinstance(secret, str):
        raise ConnectError("consumer_key and consumer_secret are required")
    if posted.get("key_permissions") not in (None, "read_write"):
        raise ConnectError("Aftersale needs read_write permissions")
    domain, base = _checked_store(url, key, secret)
    now = runtime.clock.now()
    expires_at = signed_at + timedelta(seconds=AUTHORIZE_MAX_AGE)
    with runtime.engine.begin() as conn:
        token_store.prune(conn, now)
        spent = token_store.consume(
            conn, CONNECT_PURPOSE, _canonical(token), now=now, expires_at=expires_at
        )
        if not spent:
            raise ConnectError("this authorization was already used; start again")
        shop_id = _save_key(runtime, conn, domain, base, key, secret)
    log.info("shop.connected", platform="woocommerce", shop=domain)
    return shop_id, domain


def register_webhooks_job(domain: str) -> dict:
    """RQ job after the key exchange: create the store's webhooks (the callback answered at once)."""
    done = register_woocommerce_webhooks(jobs.current(), domain)
    return {topic: what for topic, (what, _) in done.items()}
