"""Signed links in messages: review (``/r/``), help (``/h/``) and unsubscribe (``/u/``).

A link carries a small signed token (itsdangerous) instead of ids in plain
query strings, so nobody can unsubscribe someone else or forge a review click
by editing a number. Tokens are signed with a key derived per shop from
SECRET_KEY and the shop's link-key version:

* rotating SECRET_KEY (old one in SECRET_KEY_PREVIOUS) keeps every link valid;
* rotating one shop's key (``aftersale links rotate-key``) bumps its version;
  links of the version before still work, older ones stop working. Rotate
  twice to revoke every link of a shop at once.

Tokens carry ids, never an email address: the address an unsubscribe applies
to is looked up from the action the mail was sent for, so a link leaked into
a proxy log does not leak who the customer is. Each kind of link has its own
salt and lifetime; an expired or tampered token is refused with
:class:`LinkInvalid`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from aftersale.clock import SystemClock

#: kind -> (URL prefix, how long a link stays valid)
KINDS: dict[str, tuple[str, timedelta]] = {
    "review": ("r", timedelta(days=180)),
    "help": ("h", timedelta(days=365)),
    # Mail clients and people unsubscribe from mail they kept for a long time.
    "unsubscribe": ("u", timedelta(days=730)),
}
#: the shops.settings key holding a shop's link-key version
KEY_VERSION_SETTING = "link_key_version"


class LinkInvalid(Exception):
    """The token is malformed, tampered with, signed with a revoked key, or expired.

    ``expired`` tells the two apart, so the page can say "this link has expired"
    rather than "this link is broken".
    """

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says. ``action`` is 0 in previews, where no action exists."""

    kind: str
    shop_id: int
    action_id: int
    order_ref: str | None = None
    order_name: str | None = None
    product_id: str | None = None
    sku: str | None = None
    handle: str | None = None
    locale: str | None = None

    def to_payload(self) -> dict:
        payload = {"s": self.shop_id, "a": self.action_id}
        for key, value in _SHORT_KEYS.items():
            if getattr(self, value):
                payload[key] = getattr(self, value)
        return payload

    @classmethod
    def from_payload(cls, kind: str, payload) -> LinkClaims:
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
            raise LinkInvalid("token payload is not a link")
        optional = {
            name: str(payload[key]) for key, name in _SHORT_KEYS.items() if payload.get(key)
        }
        return cls(
            kind=kind, shop_id=payload["s"], action_id=int(payload.get("a") or 0), **optional
        )


#: payload keys are one letter: the token is part of a URL in a mail
_SHORT_KEYS = {
    "o": "order_ref",
    "n": "order_name",
    "p": "product_id",
    "k": "sku",
    "h": "handle",
    "l": "locale",
}


class LinkSigner:
    """Makes and checks link tokens for every shop of one deployment.

    Args:
        secret_keys: SECRET_KEY first, then SECRET_KEY_PREVIOUS during a rotation.
        public_url: where the web app is reachable (PUBLIC_URL), without a trailing slash.
        clock: tokens are stamped and checked against it, so tests move time.
    """

    def __init__(self, secret_keys: tuple[str, ...], public_url: str, clock=None):
        if not secret_keys:
            raise ValueError("signed links need SECRET_KEY")
        self.secret_keys = tuple(secret_keys)
        self.public_url = public_url.rstrip("/")
        self.clock = clock or SystemClock()

    def url(self, claims: LinkClaims, key_version: int = 1) -> str:
        prefix, _ = KINDS[claims.kind]
        return f"{self.public_url}/{prefix}/{self.token(claims, key_version)}"

    def token(self, claims: LinkClaims, key_version: int = 1) -> str:
        serializer = self._serializer(claims.kind, claims.shop_id, key_version)
        return serializer.dumps(claims.to_payload())

    def shop_of(self, kind: str, token: str) -> int:
        """The shop a token claims to belong to, read *before* verifying, to pick its keys.

        Nothing else may be trusted from it; :meth:`verify` checks the signature.
        """
        return LinkClaims.from_payload(kind, self.unverified_payload(kind, token)).shop_id

    def unverified_payload(self, kind: str, token: str):
        """The token's payload without checking it (None when unreadable): only for choosing
        keys and the language of an error page."""
        if kind not in KINDS:
            raise LinkInvalid(f"unknown link kind {kind!r}")
        _, payload = self._serializer(kind, 0, 1).loads_unsafe(token)
        return payload

    def verify(self, kind: str, token: str, key_version: int = 1) -> LinkClaims:
        """The claims of a valid token; LinkInvalid when tampered, revoked or expired."""
        shop_id = self.shop_of(kind, token)
        _, max_age = KINDS[kind]
        serializer = self._serializer(kind, shop_id, key_version)
        try:
            payload = serializer.loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired as exc:
            raise LinkInvalid("link expired", expired=True) from exc
        except BadData as exc:
            raise LinkInvalid("bad signature") from exc
        claims = LinkClaims.from_payload(kind, payload)
        if claims.shop_id != shop_id:  # pragma: no cover - the signature covers the payload
            raise LinkInvalid("shop mismatch")
        return claims

    def _serializer(self, kind: str, shop_id: int, key_version: int) -> URLSafeTimedSerializer:
        # itsdangerous signs with the last key and accepts every key in the list.
        versions = [v for v in (key_version - 1, key_version) if v >= 1]
        keys = [
            shop_key(secret, shop_id, version)
            for version in versions
            for secret in reversed(self.secret_keys)
        ]
        return URLSafeTimedSerializer(
            keys,
            salt=f"aftersale.link.{kind}",
            signer=ClockSigner,
            signer_kwargs={"clock": self.clock},
        )


def shop_key(secret: str, shop_id: int, version: int) -> bytes:
    """A shop's link key: SECRET_KEY never signs links directly, and shops never share a key."""
    message = f"aftersale links|shop {shop_id}|version {version}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def key_version(shop_row) -> int:
    """A shop's current link-key version (1 until its key is first rotated)."""
    settings = (shop_row.settings if shop_row is not None else None) or {}
    version = settings.get(KEY_VERSION_SETTING, 1)
    return version if isinstance(version, int) and version >= 1 else 1


class ClockSigner(TimestampSigner):
    """A TimestampSigner that reads the injected clock, so expiry is testable without sleeping."""

    def __init__(self, *args, clock, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())
