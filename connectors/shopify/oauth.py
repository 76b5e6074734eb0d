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
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

import requests

from aftersale.core import http
from aftersale.core.errors import TransientError

SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
#: how far the callback's ``timestamp`` may be from our clock
MAX_CLOCK_SKEW = timedelta(seconds=90)
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
    base = (admin_url or f"https://{shop}").rstrip("/")
    response = http.request(
        session,
        "POST",
        f"{base}/admin/oauth/access_token",
        "Shopify token exchange",
        timeout=TIMEOUT,
        data={
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "expiring": "1",
        },
        headers={"Accept": "application/json"},
    )
    answer = http.json_or_none(response)
    detail = None
    if isinstance(answer, dict):
        detail = str(answer.get("error_description") or answer.get("error") or "")[:300] or None
    http.check(response, "Shopify token exchange", detail)
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        raise TransientError("Shopify token exchange: no access_token in the answer")
    return answer


def credentials_from(answer: dict, now: datetime) -> dict:
    """What is stored (encrypted) from the exchange's answer; expiry as ISO 8601 UTC."""
    stored = {"access_token": answer["access_token"], "scope": answer.get("scope", "")}
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
