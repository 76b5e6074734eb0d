"""Installing Aftersale as a Shopify app: the install link, the callback, the webhooks.

``/shopify/install?shop=...`` sends the merchant to Shopify's consent screen
with the scopes the loaded rules need (``rules.scopes``) and a ``state``: a
token signed with SECRET_KEY naming the shop and carrying a random nonce.
The callback checks Shopify's signature, the clock and the shop name
(``connectors.shopify.oauth``), then spends the nonce in ``consumed_tokens``
*before* exchanging the code: the code is single-use at Shopify anyway, so a
callback URL can never usefully be sent twice, and spending first means a
replayed one never reaches Shopify with our client secret.

The token (expiring, with its refresh token) is stored encrypted with the
shop, and the webhooks the rules need are created through GraphQL; the same
:func:`register_shopify_webhooks` serves ``aftersale webhooks register``, and
:func:`list_shopify_webhooks` ``webhooks list``. Every Admin API call goes
through ``workers.shop_access``, which renews an expiring token first.

:func:`add_shopify` is the other way in, for a merchant's own store: the
client credentials grant with their own app's client id and secret (stored
encrypted, to ask for the next token when this one runs out).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

from aftersale.connectors.shopify import oauth
from aftersale.connectors.shopify.api import API_VERSION, ShopifyAdminAPI
from aftersale.connectors.shopify.oauth import InstallRefused
from aftersale.connectors.shopify.subscriptions import graphql_topic
from aftersale.core import logs
from aftersale.core.errors import DeliveryFailed
from aftersale.core.links import ClockSigner
from aftersale.rules.scopes import shopify_needs
from aftersale.store import shops as shop_store
from aftersale.store import tokens as token_store
from aftersale.store.tables import shops
from aftersale.workers import shop_access

log = logs.get_logger("aftersale.shopify_install")
#: the consumed_tokens purpose of the install's state nonce
INSTALL_PURPOSE = "shopify-install"
#: the merchant approves within minutes; a state older than this is refused
STATE_MAX_AGE = 900
#: what a new install's token replaces in the stored credentials (stale ones go)
TOKEN_KEYS = (
    "access_token",
    "scope",
    "refresh_token",
    "expires_at",
    "refresh_token_expires_at",
    "grant",
    "client_id",
    "client_secret",
)

__all__ = [
    "InstallFailed",
    "InstallRefused",
    "InstallResult",
    "add_shopify",
    "app_config_toml",
    "begin_install",
    "complete_install",
    "list_shopify_webhooks",
    "register_shopify_webhooks",
]


class InstallFailed(Exception):
    """The callback was genuine but Shopify did not hand out a token (try again)."""


@dataclass
class InstallResult:
    shop: str
    scopes: tuple[str, ...]
    webhooks: list = field(default_factory=list)
    webhook_error: str | None = None


def callback_url(runtime) -> str:
    return f"{runtime.config.public_url}/shopify/callback"


def delivery_url(runtime) -> str:
    """Where Shopify posts every topic: the shop is in X-Shopify-Shop-Domain."""
    return f"{runtime.config.public_url}/webhooks/shopify"


def _serializer(runtime) -> URLSafeTimedSerializer:
    # stamped with the runtime's clock, the one consumed tokens are pruned by
    return URLSafeTimedSerializer(
        list(runtime.config.secret_keys),
        salt="shopify-install",
        signer=ClockSigner,
        signer_kwargs={"clock": runtime.clock},
    )


def begin_install(runtime, shop_param) -> str:
    """The authorize URL for ``shop_param``; InstallRefused for a name that is not a shop."""
    shop = oauth.shop_domain(shop_param)
    if shop is None:
        raise InstallRefused("shop must be a NAME.myshopify.com store")
    if not runtime.config.shopify_api_key:
        raise InstallRefused("this Aftersale has no SHOPIFY_API_KEY (client id) configured")
    needs = shopify_needs(runtime.rules, shop)
    state = _serializer(runtime).dumps({"shop": shop, "n": secrets.token_urlsafe(18)})
    log.info("shopify.install_started", shop=shop, scopes=needs.scope_param)
    return oauth.authorize_url(
        shop, runtime.config.shopify_api_key, needs.scope_param, callback_url(runtime), state
    )


def _checked_state(runtime, state, shop: str) -> tuple[str, object]:
    """(nonce, signed-at) of a state this app issued for ``shop``; InstallRefused otherwise."""
    try:
        if not isinstance(state, str) or not state:
            raise BadData("no state")
        claims, signed_at = _serializer(runtime).loads(
            state, max_age=STATE_MAX_AGE, return_timestamp=True
        )
    except (BadData, ValueError, OverflowError, OSError) as exc:
        raise InstallRefused("the install state is invalid or expired; start again") from exc
    if not isinstance(claims, dict) or claims.get("shop") != shop:
        raise InstallRefused("the install state belongs to another shop; start again")
    nonce = claims.get("n")
    if not isinstance(nonce, str) or not nonce:
        raise InstallRefused("the install state is invalid; start again")
    return nonce, signed_at


def complete_install(runtime, params: dict) -> InstallResult:
    """The callback: verify, spend the state, exchange the code, store the token, subscribe.

    Raises InstallRefused (nothing stored) for a forged, replayed, stale or foreign
    callback, InstallFailed when Shopify refused the code. A webhook registration
    failure does not undo the install: the result says so and the CLI can repeat it.
    """
    config = runtime.config
    now = runtime.clock.now()
    shop = oauth.check_callback(params, config.shopify_api_secrets, now)
    nonce, signed_at = _checked_state(runtime, params.get("state"), shop)
    with runtime.engine.begin() as conn:
        token_store.prune(conn, now)
        fresh = token_store.consume(
            conn,
            INSTALL_PURPOSE,
            f"{shop}:{nonce}",
            now=now,
            expires_at=signed_at + timedelta(seconds=STATE_MAX_AGE),
        )
    if not fresh:
        raise InstallRefused("this install link was already used; start again")
    try:
        answer = oauth.exchange_code(
            runtime.platform_session(),
            shop,
            config.shopify_api_key,
            config.shopify_api_secrets[0],
            params["code"],
            admin_url=config.shopify_admin_url or None,
        )
    except DeliveryFailed as exc:
        log.warning("shopify.token_exchange_failed", shop=shop, error=str(exc))
        raise InstallFailed("Shopify did not give Aftersale a token; start again") from exc
    _store_token(runtime, shop, oauth.credentials_from(answer, now))
    needs = shopify_needs(runtime.rules, shop)
    result = InstallResult(shop=shop, scopes=needs.scopes)
    granted = set(filter(None, (answer.get("scope") or "").split(",")))
    missing = sorted(set(needs.scopes) - granted) if granted else []
    log.info("shopify.installed", shop=shop, scopes=answer.get("scope"), missing=missing)
    try:
        result.webhooks = register_shopify_webhooks(runtime, shop)
    except DeliveryFailed as exc:
        log.warning("shopify.webhooks_not_registered", shop=shop, error=str(exc))
        result.webhook_error = str(exc)
    return result


def _store_token(runtime, shop: str, token: dict) -> int:
    """Save the new token over the old one (a reinstall drops a stale refresh token too)."""
    now = runtime.clock.now()
    keys = runtime.config.secret_keys
    with runtime.engine.begin() as conn:
        shop_id = shop_store.ensure_shop(conn, "shopify", shop, now)
        row = shop_store.get_shop(conn, shop_id)
        kept = {
            k: v for k, v in shop_store.credentials_of(row, keys).items() if k not in TOKEN_KEYS
        }
        shop_store.save_credentials(conn, shop_id, keys, {**kept, **token}, now)
        values = {"status": "active", "updated_at": now, "installed_at": now, "access_error": None}
        admin_url = runtime.config.shopify_admin_url
        if admin_url:
            values["settings"] = {**(row.settings or {}), "api_url": admin_url}
        conn.execute(shops.update().where(shops.c.id == shop_id).values(**values))
    runtime.forget_shops()
    return shop_id


def _installed_row(runtime, shop: str):
    """The shop's row when it holds a token; InstallRefused otherwise."""
    with runtime.engine.connect() as conn:
        row = shop_store.find_shop(conn, "shopify", shop)
    if row is None or not shop_store.credentials_of(row, runtime.config.secret_keys).get(
        "access_token"
    ):
        raise InstallRefused(f"no Shopify token stored for {shop}; install the app first")
    return row


def _admin_call(runtime, row, method: str, *args):
    """``ShopifyAdminAPI.<method>(*args)`` with a token that works (``workers.shop_access``);
    the outcome is recorded as the shop's webhook health."""

    def run(access):
        return getattr(ShopifyAdminAPI(access, runtime.platform_session()), method)(*args)

    try:
        done = shop_access.call(runtime, row, run)
    except DeliveryFailed as exc:
        shop_store.record_webhooks(runtime.engine, row.id, runtime.clock.now(), str(exc))
        raise
    return done


def register_shopify_webhooks(runtime, shop: str) -> list[tuple[str, str, str]]:
    """Create, repair or remove the shop's subscriptions to match the rules; what was done.

    Raises InstallRefused when the shop has no stored token, DeliveryFailed when
    Shopify refused or stayed unavailable.
    """
    row = _installed_row(runtime, shop)
    needs = shopify_needs(runtime.rules, shop)
    topics = {topic: graphql_topic(topic) for topic in needs.topics}
    done = _admin_call(runtime, row, "register_webhooks", delivery_url(runtime), topics)
    shop_store.record_webhooks(runtime.engine, row.id, runtime.clock.now(), None)
    log.info(
        "shopify.webhooks_registered",
        shop=shop,
        **{
            w: sum(1 for _, what, _ in done if what == w) for w in ("created", "updated", "deleted")
        },
    )
    return done


def remove_shopify_webhooks(runtime, shop: str) -> list[str]:
    """Delete the shop's subscriptions that post here; the ids deleted.

    Raises InstallRefused when the shop has no stored token, DeliveryFailed when
    Shopify refused or stayed unavailable.
    """
    row = _installed_row(runtime, shop)
    removed = _admin_call(runtime, row, "remove_webhooks", delivery_url(runtime))
    log.info("shopify.webhooks_removed", shop=shop, removed=len(removed))
    return removed


def list_shopify_webhooks(runtime, shop: str) -> tuple[list[dict], list[str]]:
    """The shop's subscriptions as Shopify lists them, and what is wrong with them compared
    with what the rules need (a topic missing, or posting elsewhere); recorded as the shop's
    webhook health."""
    row = _installed_row(runtime, shop)
    subscriptions = _admin_call(runtime, row, "webhook_subscriptions")
    uri = delivery_url(runtime)
    problems = []
    for topic in shopify_needs(runtime.rules, shop).topics:
        enum = graphql_topic(topic)
        uris = [s.get("uri") for s in subscriptions if s.get("topic") == enum]
        if not uris:
            problems.append(f"{topic}: no subscription")
        elif uri not in uris:
            problems.append(f"{topic}: posts to {uris[0]}")
    error = "; ".join(problems)[:500] or None
    shop_store.record_webhooks(runtime.engine, row.id, runtime.clock.now(), error)
    return subscriptions, problems


def add_shopify(runtime, shop_param, client_id: str, client_secret: str) -> int:
    """Connect the store of the app's own organization with the client credentials grant;
    the shop id. The client id and secret are stored (encrypted) with the token: the token
    lasts about a day and ``workers.shop_access`` asks for a new one with them.

    Raises InstallRefused for a name that is not a shop, InstallFailed when Shopify
    refused the credentials.
    """
    shop = oauth.shop_domain(shop_param)
    if shop is None:
        raise InstallRefused("shop must be a NAME.myshopify.com store")
    if not client_id or not client_secret:
        raise InstallRefused("the app's client id and client secret are both needed")
    now = runtime.clock.now()
    try:
        answer = oauth.client_credentials(
            runtime.platform_session(),
            shop,
            client_id,
            client_secret,
            admin_url=runtime.config.shopify_admin_url or None,
        )
    except DeliveryFailed as exc:
        log.warning("shopify.client_credentials_refused", shop=shop, error=str(exc))
        raise InstallFailed(
            f"Shopify did not give a token for {shop}: {exc}. The app must belong to the "
            "store's own organization and be installed on the store (Dev Dashboard)."
        ) from exc
    token = {
        **oauth.credentials_from(answer, now),
        "grant": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    shop_id = _store_token(runtime, shop, token)
    log.info("shopify.connected", shop=shop, grant="client_credentials", scopes=answer.get("scope"))
    return shop_id


#: Shopify's mandatory compliance topics: declared in the app configuration, never
#: created through webhookSubscriptionCreate (Shopify refuses them there)
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")


def app_config_toml(public_url: str, client_id: str, scopes) -> str:
    """``shopify.app.toml`` for this deployment (``aftersale shopify app-config``).

    ``use_legacy_install_flow`` keeps installs on the authorization code grant, so
    an App Store install lands on ``/shopify/install`` (the application_url) and is
    asked for the scopes the rules compute; the compliance topics point at the
    webhook receiver, which answers a bad signature with 401.
    """
    public = public_url.rstrip("/")
    compliance = ", ".join(f'"{t}"' for t in COMPLIANCE_TOPICS)
    return "\n".join(
        [
            "# Shopify app configuration for Aftersale: `aftersale shopify app-config` prints it",
            "# for this deployment's PUBLIC_URL and SHOPIFY_API_KEY (docs/shopify.md).",
            f'client_id = "{client_id}"',
            'name = "Aftersale"',
            f'application_url = "{public}/shopify/install"',
            "embedded = false",
            "",
            "[access_scopes]",
            "# computed from the loaded rules (rules/scopes.py); the install link asks for them",
            f'scopes = "{",".join(scopes)}"',
            "use_legacy_install_flow = true",
            "",
            "[auth]",
            f'redirect_urls = ["{public}/shopify/callback"]',
            "",
            "[webhooks]",
            f'api_version = "{API_VERSION}"',
            "",
            "  [[webhooks.subscriptions]]",
            f"  compliance_topics = [{compliance}]",
            f'  uri = "{public}/webhooks/shopify"',
            "",
        ]
    )
