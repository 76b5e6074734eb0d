"""One recipient, exactly: an email address or phone text reduced before any channel sees it.

An order's email field is platform data a customer typed. ``a@b.example,
x@evil.example`` in it must not become two recipients: SMTP would take both
as envelope recipients and Postmark mails every address in its ``To``. So a
recipient is reduced here to exactly one address, or to nothing (the message
is then skipped ``no_recipient``), and channels check again that what they are
handed is one address.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from functools import lru_cache

#: RFC 5321 limits: 64 for the local part, 254 for the path (320 is the column width)
MAX_LOCAL = 64
MAX_ADDRESS = 254
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SEPARATORS = re.compile(r"[,;\s<>\"()\[\]\\]")


def one_email(value: object) -> str | None:
    """The single bare address in ``value`` (``user@domain``), or None.

    None for anything that is not exactly one syntactically valid address:
    two addresses, a display name hiding a second one, control characters,
    over-long parts, a missing or dotless domain. An internationalized domain
    is accepted (channels encode it); the local part must be ASCII.
    """
    if not isinstance(value, str):
        return None
    return _one_email(value)


@lru_cache(maxsize=4096)
def _one_email(value: str) -> str | None:
    """:func:`one_email` of a string, remembered: a send checks the same address three
    times (the recipient, the consent check, the channel), and parsing it is not cheap."""
    value = value.strip()
    if not value or len(value) > 320 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    parsed = getaddresses([value])
    if len(parsed) != 1:
        return None
    address = parsed[0][1]
    if not address or _SEPARATORS.search(address) or address.count("@") != 1:
        return None
    if value != address and not value.endswith(f"<{address}>"):
        return None  # some other text around the address than a display name
    local, domain = address.split("@")
    if not local or len(local) > MAX_LOCAL or len(address) > MAX_ADDRESS:
        return None
    if not _LOCAL.match(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return None
    return address


def is_one_email(value: object) -> bool:
    """True when ``value`` is already exactly one bare address (what channels accept)."""
    return isinstance(value, str) and one_email(value) == value


#: how phone numbers are written one after another: "+381 64 1234567 / +381 11 2223344"
_PHONE_SEPARATORS = re.compile(r"\s*(?:[/,;|]|\bor\b|\bili\b)\s*", re.IGNORECASE)


def phone_candidates(value: object) -> list[str]:
    """The phone numbers written in one field, in order (a field often holds two)."""
    if value is None:
        return []
    text = "".join(c for c in str(value) if ord(c) >= 32)[:128]
    return [part for part in _PHONE_SEPARATORS.split(text) if any(ch.isdigit() for ch in part)]
