"""DKIM keys: loaded and checked once, then used to sign each outgoing email (dkimpy).

A key is configured for the deployment (``DKIM_KEY_FILE``, ``DKIM_SELECTOR``,
``DKIM_DOMAIN``) and, for shops that send from their own domain, per shop in
the rule pack's ``settings.yaml`` (``dkim:``). Either way the file is read and
parsed when the configuration loads, so a missing or unreadable key stops the
process at start-up with the setting named, never at the first send.

Signing uses dkimpy (the reference Python implementation, also behind
``dkimsign``); the public half, for the DNS record, comes from ``cryptography``.
Headers signed are the ones RFC 6376 5.4 and RFC 8058 name: From, To, Subject,
Date, Message-ID, and List-Unsubscribe with List-Unsubscribe-Post when a
marketing mail carries them (one-click unsubscribe is honoured only when a DKIM
signature covers both), plus the headers that say how to read the body.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: signed when present, in this order; From is always present (RFC 6376 requires it)
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Language",
)
#: RFC 8301: verifiers ignore RSA keys shorter than 1024 bits; 2048 is what to generate
MIN_KEY_BITS = 1024
SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")
DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
GENERATE = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"


class DkimKeyError(ValueError):
    """A DKIM setting is missing or its key file cannot be used; the message says which."""


@dataclass(frozen=True)
class DkimKey:
    """One signing identity: ``d=domain``, ``s=selector`` and the RSA private key."""

    domain: str
    selector: str
    key_file: Path
    #: PKCS#1 PEM with LF line ends, the form dkimpy parses; never printed
    private_pem: bytes = field(repr=False)
    public_der: bytes = field(repr=False)

    @property
    def record_name(self) -> str:
        """Where the public key is published: ``<selector>._domainkey.<domain>``."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_record(self) -> str:
        """The TXT value a verifier looks up (RFC 6376 3.6.1)."""
        return f"v=DKIM1; k=rsa; p={base64.b64encode(self.public_der).decode('ascii')}"

    def signature(self, message: bytes) -> bytes:
        """The ``DKIM-Signature:`` header line (CRLF-terminated) to put before ``message``.

        Raises:
            dkim.DKIMException: the message is malformed (no From header).
        """
        # deferred import: only senders sign (dkimpy, dnspython: megabytes web never uses)
        import dkim

        present = _header_names(message)
        include = [name.encode() for name in SIGNED_HEADERS if name.lower() in present]
        return dkim.sign(
            message,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.private_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )

    def sign(self, message: bytes) -> bytes:
        """``message`` with its DKIM-Signature header first."""
        return self.signature(message) + message


def load_key(domain: str, selector: str, key_file: str | Path, *, names: dict) -> DkimKey:
    """Read and check a key; ``names`` says what each value is called where it was set
    (``{"domain": "DKIM_DOMAIN", ...}``), for messages that name the setting to fix.

    Raises:
        DkimKeyError: a value is missing or malformed, or the key file is missing,
            unreadable, not an unencrypted RSA private key, or too short.
    """
    for value, what in ((domain, "domain"), (selector, "selector"), (key_file, "key_file")):
        if not str(value or "").strip():
            raise DkimKeyError(f"{names[what]} is not set; DKIM needs a domain, selector and key")
    domain = domain.strip().lower().rstrip(".")
    if not DOMAIN.match(domain):
        raise DkimKeyError(f"{names['domain']}={domain!r} is not a domain name, e.g. shop.com")
    if not SELECTOR.match(selector):
        raise DkimKeyError(
            f"{names['selector']}={selector!r}: a selector is letters, digits, '-' and '.',"
            " e.g. aftersale or s2026"
        )
    path = Path(key_file).expanduser()
    private = _read_private_key(path, names["key_file"])
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(domain, selector, path, pem, public)


def _read_private_key(path: Path, setting: str) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(
            f"{setting}={path}: cannot read the DKIM key ({exc.strerror or exc});"
            f" create one with: {GENERATE}"
        ) from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DkimKeyError(
            f"{setting}={path}: the key is encrypted; DKIM needs it without a passphrase"
            " (openssl pkey -in KEY -out dkim.pem), readable only by Aftersale's user"
        ) from None
    except ValueError:
        raise DkimKeyError(
            f"{setting}={path}: not a PEM private key (expected '-----BEGIN PRIVATE KEY-----');"
            f" create one with: {GENERATE}"
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise DkimKeyError(f"{setting}={path}: not an RSA key; create one with: {GENERATE}")
    if private.key_size < MIN_KEY_BITS:
        raise DkimKeyError(
            f"{setting}={path}: a {private.key_size}-bit key is ignored by verifiers"
            f" (RFC 8301); create a 2048-bit one with: {GENERATE}"
        )
    return private


def _header_names(message: bytes) -> set[str]:
    """Lower-cased names of the header fields of ``message`` (up to the first blank line)."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return {
        line.split(b":", 1)[0].strip().lower().decode("ascii", "replace")
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t") and b":" in line
    }
