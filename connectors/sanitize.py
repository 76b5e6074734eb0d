"""Untrusted payloads made safe before a connector reads them.

Platforms (and the plugins around them) send odd data: NUL characters,
amounts written ``12,50`` or ``1e308``, a customer given as a string, a locale
that is a number, an email of a thousand characters, an order created in year
9999. None of that may stop a delivery: :func:`clean_payload` runs once on
every parsed payload at the connector boundary (``Connector.normalize``) and
returns a copy in which

* every string (keys too) is free of C0 control characters other than tab and
  newline (PostgreSQL rejects NUL in text and ``\\u0000`` in jsonb);
* each key the connector reads has the type the connector expects, per the
  connector's :class:`Shape`; a value that does not fit (an unreadable amount,
  date, email or locale, an object where a list belongs, ...) is removed, so
  it is *missing*, and a warning says so.

Warnings are collected per normalization (:func:`collecting`, :func:`warn`) and
end up in the canonical event (``Event.warnings``, stored with the event).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from aftersale.core.events import parse_time

#: C0 controls except tab (\x09) and newline (\x0a)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")
#: more than a real order carries; beyond it an amount is a typo or an attack
MAX_AMOUNT = Decimal(10) ** 12
MAX_EMAIL = 320
MAX_LOCALE = 16
_EMAIL = re.compile(
    r"^[^\s@<>()\[\],;:\"]{1,64}@[^\s@<>()\[\],;:\".]+(?:\.[^\s@<>()\[\],;:\".]+)+$"
)
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_COMMA_AMOUNT = re.compile(r"^[+-]?\d+,\d{1,2}$")
MAX_WARNINGS = 50

_warnings: ContextVar[list[str] | None] = ContextVar("normalize_warnings", default=None)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the warnings of one normalization into the yielded list."""
    bucket: list[str] = []
    token = _warnings.set(bucket)
    try:
        yield bucket
    finally:
        _warnings.reset(token)


def warn(message: str) -> None:
    """Record a warning for the normalization under way (ignored outside one)."""
    bucket = _warnings.get()
    if bucket is None or message in bucket:
        return
    if len(bucket) < MAX_WARNINGS:
        bucket.append(message)
    elif len(bucket) == MAX_WARNINGS:
        bucket.append("more warnings left out")


def clean_text(value: str) -> str:
    """``value`` without C0 control characters other than tab and newline."""
    return _CONTROL.sub("", value) if _CONTROL.search(value) else value


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# -- value checks: each returns the value to keep, or raises _Missing --------------------


class _Missing(Exception):
    """The value cannot be used; the key is dropped with this reason as a warning."""


def amount(value) -> Decimal | None:
    """An amount as a Decimal, or None when it is not a sane one.

    Accepts numbers and numeric strings; ``12,50`` is read as 12.50 only when
    that is the one possible reading (a single comma, no dot, 1-2 decimals).
    Non-finite values and magnitudes above 10^12 are not amounts.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
        if _COMMA_AMOUNT.match(text):
            text = text.replace(",", ".")
        elif "," in text:
            return None
    else:
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) > MAX_AMOUNT:
        return None
    return number


def _money(value, path: str):
    if value is None or value == "":
        return value
    number = amount(value)
    if number is None:
        raise _Missing(f"{path}: not a usable amount ({_short(value)}); treated as missing")
    if isinstance(value, str) and "," in value:
        return str(number)  # the unambiguous "12,50"
    return value


def _time(value, path: str):
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        raise _Missing(f"{path}: not a date ({_kind(value)}); treated as missing")
    try:
        parse_time(value)
    except (ValueError, TypeError, OverflowError):
        raise _Missing(f"{path}: not a date ({_short(value)}); treated as missing") from None
    return value


def valid_email(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_EMAIL and bool(_EMAIL.match(value))


def _email(value, path: str):
    if value is None or value == "":
        return value
    if isinstance(value, str):
        stripped = value.strip()
        if valid_email(stripped):
            return stripped
        if len(stripped) > MAX_EMAIL:
            raise _Missing(
                f"{path}: email of {len(stripped)} characters (max {MAX_EMAIL}); treated as missing"
            )
    raise _Missing(f"{path}: not an email address ({_short(value)}); treated as missing")


def valid_locale(value) -> bool:
    return isinstance(value, str) and len(value) <= MAX_LOCALE and bool(_LOCALE.match(value))


def _locale(value, path: str):
    if value is None or value == "":
        return value
    if valid_locale(value.strip() if isinstance(value, str) else value):
        return value.strip()
    raise _Missing(f"{path}: not a locale ({_short(value)}); treated as missing")


def _text(value, path: str):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Missing(f"{path}: expected text, got {_kind(value)}; treated as missing")


def _scalar(value, path: str):
    if isinstance(value, dict | list):
        raise _Missing(f"{path}: expected a single value, got {_kind(value)}; treated as missing")
    return value


def _short(value) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)[:40]
    return _kind(value)


@dataclass(frozen=True)
class Shape:
    """What a connector expects under each key, wherever the key appears in the payload.

    Keys not named here keep their value (strings cleaned, containers walked).
    """

    objects: frozenset[str] = frozenset()  # must be an object
    object_lists: frozenset[str] = frozenset()  # must be a list of objects
    lists: frozenset[str] = frozenset()  # must be a list (of single values)
    money: frozenset[str] = frozenset()
    times: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    locales: frozenset[str] = frozenset()
    texts: frozenset[str] = frozenset()  # a string; a number becomes its string
    scalars: frozenset[str] = frozenset()  # anything but an object or a list

    def check(self, key: str):
        if key in self.money:
            return _money
        if key in self.times:
            return _time
        if key in self.emails:
            return _email
        if key in self.locales:
            return _locale
        if key in self.texts:
            return _text
        if key in self.scalars:
            return _scalar
        return None


def shape(**kinds: str) -> Shape:
    """``Shape`` from space-separated key lists: ``shape(objects="customer billing")``."""
    return Shape(**{kind: frozenset(keys.split()) for kind, keys in kinds.items()})


EMPTY_SHAPE = Shape()


def clean_payload(payload, spec: Shape = EMPTY_SHAPE) -> dict:
    """A cleaned copy of a parsed JSON payload (see the module docstring); never raises."""
    if not isinstance(payload, dict):
        warn(f"payload: expected an object, got {_kind(payload)}; treated as empty")
        return {}
    return _clean_object(payload, spec, "")


def _clean_object(obj: dict, spec: Shape, prefix: str) -> dict:
    out = {}
    for raw_key, value in obj.items():
        key = clean_text(raw_key) if isinstance(raw_key, str) else str(raw_key)
        path = f"{prefix}.{key}" if prefix else key
        if key != raw_key:
            warn(f"{path}: control characters removed from the key")
        try:
            out[key] = _clean_value(key, value, spec, path)
        except _Missing as missing:
            warn(str(missing))
    return out


def _clean_value(key: str, value, spec: Shape, path: str):
    if value is None:
        return None
    if key in spec.objects:
        if not isinstance(value, dict):
            raise _Missing(f"{path}: expected an object, got {_kind(value)}; treated as missing")
        return _clean_object(value, spec, path)
    if key in spec.object_lists or key in spec.lists:
        if not isinstance(value, list):
            raise _Missing(f"{path}: expected a list, got {_kind(value)}; treated as missing")
        want_objects = key in spec.object_lists
        items = []
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if want_objects and not isinstance(item, dict):
                warn(f"{item_path}: expected an object, got {_kind(item)}; left out")
            elif not want_objects and isinstance(item, dict | list):
                warn(f"{item_path}: expected a single value, got {_kind(item)}; left out")
            else:
                items.append(_clean_any(item, spec, item_path))
        return items
    check = spec.check(key)
    if check is not None:
        value = check(value, path)
    return _clean_any(value, spec, path)


def _clean_any(value, spec: Shape, path: str):
    if isinstance(value, str):
        cleaned = clean_text(value)
        if cleaned != value:
            warn(f"{path}: control characters removed")
        return cleaned
    if isinstance(value, dict):
        return _clean_object(value, spec, path)
    if isinstance(value, list):
        return [_clean_any(item, spec, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean_deep(value):
    """Strings cleaned of control characters anywhere in a JSON-like value (no shape)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {
            (clean_text(k) if isinstance(k, str) else k): clean_deep(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [clean_deep(v) for v in value]
    return value
