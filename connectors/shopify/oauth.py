"""Shopify's app install (OAuth authorization code grant): the checks and the token exchange.

Everything the callback checks is here as pure functions, done exactly as
/work/shared/platforms.md says: the shop is lower-cased and must be a
``*.myshopify.com`` name (the code is then sent to that host with the client
secret, so a foreign host must never get that far); the query's ``hmac`` is
the hex HMAC-SHA256 of the other parameters (``signature`` dropped too),
sorted and URL-encoded, keyed with the client secret and compared in
constant time; ``timestamp`` is at most about 90 s off.

The exchange asks for an *expiring* offline token (``expiring=1``, as
Shopify's own libraries send it): public apps must use them from 2027, and
they come with a refresh token that Shopify rotates on every use.
:func:`refresh_access` swaps it (``grant_type=refresh_token``) and
:func:`client_credentials` serves a merchant's own store (``grant_type=
client_credentials``), both at the same endpoint, as Shopify's own
``shopify-api`` library sends them (tests/fixtures/shopify/SOURCES.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aftersale.core import http
from aftersale.core.errors import TransientError

if TYPE_CHECKING:  # annotations only: core/http.py loads requests when it makes a session
    import requests

SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
#: how far the callback's ``timestamp`` may be from our clock
MAX_CLOCK_SKEW = timedelta(seconds=90)
#: an expiring token is renewed this long before it expires (it lasts an hour)
REFRESH_MARGIN = timedelta(minutes=5)
TIMEOUT = 15.0


class InstallRefused(Exception):
    """The callback is not a genuine, fresh answer from Shopify; the message says why."""


def shop_domain(value) -> str | None:
    """The lower-cased shop domain when it is a ``*.myshopify.com`` name; else None."""
    if not isinstance(value, str):
        return None
    shop = value.strip().lower()
    return shop if SHOP_DOMAIN.fullmatch(shop) else None


def authorize_url(shop: str, client_id: str, scopes: str, redirect_uri: str, state: str) -> str:
    """Where the merchant approves the app (offline access: no ``grant_options[]``)."""
    query = urlencode(
        {"client_id": client_id, "scope": scopes, "redirect_uri": redirect_uri, "state": state}
    )
    return f"https://{shop}/admin/oauth/authorize?{query}"


def query_hmac(params: dict, secret: str) -> str:
    """The hex HMAC-SHA256 Shopify puts in ``hmac``: over the sorted, encoded other params."""
    message = urlencode(sorted((k, v) for k, v in params.items() if k not in ("hmac", "signature")))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_hmac(params: dict, secrets) -> bool:
    """Whether ``params["hmac"]`` was made with one of ``secrets`` (current, then previous)."""
    given = params.get("hmac")
    if not isinstance(given, str) or not given:
        return False
    given = given.lower().encode()
    return any(hmac.compare_digest(query_hmac(params, s).encode(), given) for s in secrets if s)


def check_callback(params: dict, secrets, now: datetime) -> str:
    """The shop of a genuine, fresh callback; InstallRefused otherwise (the state is checked
    by the caller, who holds the single-use record)."""
    shop = shop_domain(params.get("shop"))
    if shop is None:
        raise InstallRefused("the shop is not a myshopify.com store")
    if not verify_hmac(params, secrets):
        raise InstallRefused("the request is not signed by Shopify")
    try:
        stamp = int(params.get("timestamp", ""))
    except ValueError:
        raise InstallRefused("the request has no valid timestamp") from None
    if abs(now.timestamp() - stamp) > MAX_CLOCK_SKEW.total_seconds():
        raise InstallRefused("the request is too old; start the install again")
    if not params.get("code"):
        raise InstallRefused("the request carries no authorization code")
    return shop


def exchange_code(
    session: requests.Session,
    shop: str,
    client_id: str,
    client_secret: str,
    code: str,
    *,
    admin_url: str | None = None,
) -> dict:
    """POST the code to ``/admin/oauth/access_token``; Shopify's answer (access_token, scope,
    and for expiring tokens expires_in, refresh_token, refresh_token_expires_in).

    ``admin_url`` replaces ``https://{shop}`` (a local stand-in in tests).
    """
    form = {"client_id": client_id, "client_secret": client_secret, "code": code, "expiring": "1"}
    return _token_request(session, shop, admin_url, "Shopify token exchange", form)


def refresh_access(
    session: requests.Session,
    shop: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    *,
    admin_url: str | None = None,
) -> dict:
    """Swap a refresh token for a new access token and a new refresh token (Shopify rotates it
    on every use, so the answer's one must replace the stored one).

    A refused refresh token (revoked, expired after 90 days unused, the app uninstalled) is
    a PermanentError: only a new install gives a new one.
    """
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    return _token_request(session, shop, admin_url, "Shopify token refresh", form)


def client_credentials(
    session: requests.Session,
    shop: str,
    client_id: str,
    client_secret: str,
    *,
    admin_url: str | None = None,
) -> dict:
    """A token for the store of the app's own organization (the client credentials grant):
    no merchant interaction and no refresh token; it lasts about 24 hours and is simply
    requested again."""
    form = {
        "client_id": client_id,
        "client_secret": client_secret,
        "grant_type": "client_credentials",
    }
    return _token_request(session, shop, admin_url, "Shopify client credentials grant", form)


def _token_request(session, shop: str, admin_url: str | None, what: str, form: dict) -> dict:
    """POST ``form`` to the shop's ``/admin/oauth/access_token``; the answer with a token."""
    base = (admin_url or f"https://{shop}").rstrip("/")
    response = http.request(
        session,
        "POST",
        f"{base}/admin/oauth/access_token",
        what,
        timeout=TIMEOUT,
        data=form,
        headers={"Accept": "application/json"},
    )
    answer = http.json_or_none(response)
    detail = None
    if isinstance(answer, dict):
        detail = str(answer.get("error_description") or answer.get("error") or "")[:300] or None
    http.check(response, what, detail)
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise TransientError(f"{what}: no access_token in the answer")
    return answer


def credentials_from(answer: dict, now: datetime) -> dict:
    """What is stored (encrypted) from the exchange's answer; expiry as ISO 8601 UTC."""
    stored = {"access_token": answer["access_token"]}
    if answer.get("scope"):  # a refresh may leave it out: the grant is unchanged then
        stored["scope"] = answer["scope"]
    if answer.get("refresh_token"):
        stored["refresh_token"] = answer["refresh_token"]
    for key, target in (
        ("expires_in", "expires_at"),
        ("refresh_token_expires_in", "refresh_token_expires_at"),
    ):
        seconds = answer.get(key)
        if isinstance(seconds, int | float) and seconds > 0:
            stored[target] = (now + timedelta(seconds=seconds)).isoformat()
    return stored


def expires_soon(credentials: dict, now: datetime, margin: timedelta = REFRESH_MARGIN) -> bool:
    """Whether the stored access token expires within ``margin`` (a token without an expiry,
    or with one we cannot read, is used as it is: a 401 still renews it)."""
    stamp = credentials.get("expires_at")
    if not isinstance(stamp, str):
        return False
    try:
        expires_at = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return expires_at - margin <= now


def renewable(credentials: dict) -> bool:
    """Whether a new access token can be had without the merchant: a refresh token, or the
    client id and secret of a client-credentials app."""
    return bool(credentials.get("refresh_token") or credentials.get("client_secret"))
