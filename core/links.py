"""Signed links in messages: review (``/r/``), help (``/h/``), unsubscribe (``/u/``) and
preferences (``/p/``).

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

The links are public endpoints, so a token is treated as hostile until it is
proven otherwise: its shape and length are checked before it is decoded, the
unverified peek that picks the shop's key is bounded (a small deflated token
cannot inflate to megabytes) and trusts nothing but a well-formed shop id, and
after the signature checks out every claim is checked again for type and range
(ids fit the database's BIGINT, texts are short strings, no unknown keys).
Anything else is LinkInvalid, never an exception the web layer would turn into
a 500, even for a token signed with our own key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import zlib
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from aftersale.core.clock import SystemClock

#: kind -> (URL prefix, how long a link stays valid)
KINDS: dict[str, tuple[str, timedelta]] = {
    "review": ("r", timedelta(days=180)),
    "help": ("h", timedelta(days=365)),
    # Mail clients and people unsubscribe from mail they kept for a long time.
    "unsubscribe": ("u", timedelta(days=730)),
    # the preference centre (webhooks/preferences.py), from the footer of marketing mail
    "preferences": ("p", timedelta(days=730)),
    # a recommended product (``recommendations(n)`` in templates): the click is recorded
    "product": ("g", timedelta(days=180)),
}
#: the shops.settings key holding a shop's link-key version
KEY_VERSION_SETTING = "link_key_version"
#: ids are BIGINT in PostgreSQL; a larger one would fail in the query, not in the check
MAX_ID = 2**63 - 1
#: product ids, SKUs, handles and order names are short; a token is part of a URL
MAX_TEXT = 255
#: a language tag such as ``sr-Latn-RS`` (BCP 47 tags in practice stay well below this)
LOCALE = re.compile(r"[A-Za-z0-9_-]{1,35}")
#: URL-safe base64 and dots only; real tokens are a few hundred characters
TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,2048}")
#: what an unverified payload may inflate to before the signature is checked
MAX_PEEK_BYTES = 16 * 1024


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
        """The short payload; a value :meth:`from_payload` would refuse is left out, not signed,
        so no link we send is refused (a missing locale or SKU only makes the page plainer)."""
        payload = {"s": self.shop_id, "a": self.action_id}
        for key, name in _SHORT_KEYS.items():
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # ids from platforms may be numbers
            if value and _valid_text(key, value):
                payload[key] = value
        return payload

    @classmethod
    def from_payload(cls, kind: str, payload) -> LinkClaims:
        """Claims from a decoded payload, checked strictly; LinkInvalid for anything else.

        Only called on a payload whose signature checked out, but the check does
        not rely on it: a key that leaked, or a bug in what we sign, must still
        not turn into a crash or an out-of-range query.
        """
        if kind not in KINDS:
            raise LinkInvalid(f"unknown link kind {kind!r}")
        if not isinstance(payload, dict) or "s" not in payload:
            raise LinkInvalid("token payload is not a link")
        unknown = set(payload) - {"s", "a", *_SHORT_KEYS}
        if unknown:
            raise LinkInvalid("token payload has unknown claims")
        optional = {}
        for key, name in _SHORT_KEYS.items():
            if key not in payload:
                continue
            value = payload[key]
            # tokens signed before the check may carry a platform id as a number
            if key != "l" and type(value) is int and 0 <= value <= MAX_ID:
                value = str(value)
            if not (isinstance(value, str) and value and _valid_text(key, value)):
                raise LinkInvalid(f"token claim {key!r} is malformed")
            optional[name] = value
        return cls(
            kind=kind,
            shop_id=valid_id(payload["s"]),
            action_id=valid_id(payload.get("a", 0)),
            **optional,
        )


def valid_id(value) -> int:
    """A shop or action id as tokens carry it: an int (not a bool) in 0..MAX_ID.

    0 is the id of previews and load-time checks, signed for no real shop or
    action; no row has it, so a link carrying it finds nothing and is refused.
    """
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise LinkInvalid("token id is malformed")
    return value


def _valid_text(key: str, value: str) -> bool:
    if key == "l":
        return LOCALE.fullmatch(value) is not None
    return len(value) <= MAX_TEXT


#: payload keys are one letter: the token is part of a URL in a mail
_SHORT_KEYS = {
    "o": "order_ref",
    "n": "order_name",
    "p": "product_id",
    "k": "sku",
    "h": "handle",
    "l": "locale",
}


#: serializers kept per process, one per (kind, shop, key version); cleared when exceeded
MAX_SERIALIZERS = 4096


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
        self._serializers: dict[tuple[str, int, int], URLSafeTimedSerializer] = {}

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
        payload = self.unverified_payload(kind, token)
        if not isinstance(payload, dict):
            raise LinkInvalid("token payload is not a link")
        return valid_id(payload.get("s"))

    def unverified_payload(self, kind: str, token: str):
        """The token's payload without checking it (None when unreadable): only for choosing
        keys and the language of an error page."""
        _check_shape(kind, token)
        return _peek(token)

    def verify(self, kind: str, token: str, key_version: int = 1) -> LinkClaims:
        """The claims of a valid token; LinkInvalid when tampered, revoked, expired or malformed.

        The signature is checked first; only then are the claims read, and strictly.
        """
        shop_id = self.shop_of(kind, token)
        _, max_age = KINDS[kind]
        serializer = self._serializer(kind, shop_id, key_version)
        try:
            payload = serializer.loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired as exc:
            raise LinkInvalid("link expired", expired=True) from exc
        except BadData as exc:
            raise LinkInvalid("bad signature") from exc
        except (ValueError, OverflowError, OSError) as exc:
            # a signed timestamp beyond what datetime can hold; only our key makes one
            raise LinkInvalid("malformed timestamp") from exc
        claims = LinkClaims.from_payload(kind, payload)
        if claims.shop_id != shop_id:  # pragma: no cover - the signature covers the payload
            raise LinkInvalid("shop mismatch")
        return claims

    def _serializer(self, kind: str, shop_id: int, key_version: int) -> URLSafeTimedSerializer:
        """The serializer of one kind of link for one shop's key, built once per process.

        Building it derives two shop keys (HMAC-SHA256 each); a marketing mail signs
        four or five links, and building per link was a quarter of its signing time.
        """
        key = (kind, shop_id, key_version)
        found = self._serializers.get(key)
        if found is None:
            if len(self._serializers) > MAX_SERIALIZERS:
                self._serializers.clear()
            found = self._serializers[key] = self._new_serializer(kind, shop_id, key_version)
        return found

    def _new_serializer(self, kind: str, shop_id: int, key_version: int):
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


def _check_shape(kind: str, token) -> None:
    """Refuse what cannot be a token before any decoding work is spent on it."""
    if kind not in KINDS:
        raise LinkInvalid(f"unknown link kind {kind!r}")
    if not isinstance(token, str) or TOKEN.fullmatch(token) is None:
        raise LinkInvalid("not a link token")


def _peek(token: str):
    """Decode a token's payload without its signature, inflating at most MAX_PEEK_BYTES.

    itsdangerous's ``loads_unsafe`` would inflate a compressed payload without
    limit before anything is verified; this reads the same format (an optional
    ``.`` for "deflated", base64 up to the next ``.``) with a cap. None when
    the payload cannot be read.
    """
    compressed = token.startswith(".")
    encoded = token[1:] if compressed else token
    try:
        data = base64_decode(encoded.split(".", 1)[0])
        if compressed:
            inflater = zlib.decompressobj()
            data = inflater.decompress(data, MAX_PEEK_BYTES)
            if inflater.unconsumed_tail:
                return None
        return json.loads(data)
    except Exception:  # any undecodable payload is simply unreadable
        return None


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
    """A TimestampSigner that reads the injected clock, so expiry is testable without sleeping.

    Its digest is ``hashlib.sha1`` itself: itsdangerous's default is the same SHA-1
    behind a Python function (for FIPS builds that refuse SHA-1 at import), which
    sends every signature through ``hmac``'s pure-Python path. Same bytes, same tokens.
    """

    default_digest_method = staticmethod(hashlib.sha1)

    def __init__(self, *args, clock, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock.now().timestamp())
