"""Secrets at rest: shop credentials are Fernet tokens keyed from SECRET_KEY.

The Fernet key is derived from SECRET_KEY with HKDF, so rotating SECRET_KEY
needs the old one to decrypt: ``SECRET_KEY_PREVIOUS`` (a MultiFernet) keeps
old tokens readable while new ones use the new key.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class CredentialsUnreadable(Exception):
    """The stored credentials were encrypted with a key we do not have."""


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"aftersale-credentials", info=b"fernet"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _box(secret_keys: tuple[str, ...] | list[str]) -> MultiFernet:
    return MultiFernet([_fernet(k) for k in secret_keys if k])


def encrypt_json(secret_keys, value: dict) -> bytes:
    return _box(secret_keys).encrypt(json.dumps(value).encode())


def decrypt_json(secret_keys, token: bytes | None) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_box(secret_keys).decrypt(bytes(token)))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "stored credentials cannot be decrypted with SECRET_KEY"
        ) from exc
