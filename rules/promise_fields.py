"""Schema fields for the keys that make a rule keep its promises over time (issue 22):
``cancel_on`` with a scope, ``send_at`` and ``digest``. Each loads into the compiled
form the engine uses, so nothing is re-parsed per event.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields

from aftersale.core.events import EVENT_KINDS
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import suggest
from aftersale.rules.timing import parse_window

SCOPES = ("order", "customer")
DIGEST_KEYS = ("order", "customer")


def _kind(value) -> str:
    if not isinstance(value, str) or value not in EVENT_KINDS:
        raise ValidationError(f"unknown event kind {value!r}{suggest(str(value), EVENT_KINDS)}")
    return value


class CancelOn(fields.Field):
    """``[order.refunded, {event: order.created, scope: customer}]`` ->
    ``{"order": kinds, "customer": kinds}``: a plain kind cancels on the same order."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = [value] if isinstance(value, str | dict) else value
        if not isinstance(items, list):
            raise ValidationError(
                "cancel_on is a list of event kinds or {event: KIND, scope: order|customer}"
            )
        found = {"order": set(), "customer": set()}
        problems = {}
        for i, item in enumerate(items):
            try:
                scope, kinds = _entry(item)
            except ValidationError as exc:
                problems[i] = exc.messages
                continue
            found[scope].update(kinds)
        if problems:
            raise ValidationError(problems)
        return {scope: tuple(sorted(kinds)) for scope, kinds in found.items()}


def _entry(item) -> tuple[str, list[str]]:
    if isinstance(item, str):
        return "order", [_kind(item)]
    if not isinstance(item, dict):
        raise ValidationError("expected an event kind or {event: KIND, scope: order|customer}")
    unknown = set(item) - {"event", "scope"}
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(f"unknown key {name!r}{suggest(name, ('event', 'scope'))}")
    scope = item.get("scope", "order")
    if scope not in SCOPES:
        raise ValidationError(f"scope is order or customer, got {scope!r}")
    events = item.get("event")
    kinds = events if isinstance(events, list) else [events]
    if not kinds or kinds == [None]:
        raise ValidationError("an event kind is required, e.g. {event: order.created}")
    return scope, [_kind(k) for k in kinds]


class SendAt(fields.Field):
    """``{local: "10:00-12:00", days: [mon, tue, wed, thu, fri]}`` -> ``SendWindow``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict) or "local" not in value:
            raise ValidationError(
                'send_at is {local: "10:00-12:00", days: [mon, tue, wed, thu, fri]}'
            )
        unknown = set(value) - {"local", "days"}
        if unknown:
            name = sorted(unknown)[0]
            raise ValidationError(f"unknown key {name!r} in send_at: use local and days")
        try:
            return parse_window(value["local"], value.get("days"))
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class Digest(fields.Field):
    """``{window: 2h, key: order}`` -> ``{"window": timedelta, "key": "order"}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict) or "window" not in value:
            raise ValidationError("digest is {window: DURATION, key: order|customer}")
        unknown = set(value) - {"window", "key"}
        if unknown:
            name = sorted(unknown)[0]
            raise ValidationError(f"unknown key {name!r} in digest: use window and key")
        try:
            window = parse_duration(value["window"])
        except ValueError as exc:
            raise ValidationError(f"window: {exc}") from exc
        if window.total_seconds() <= 0:
            raise ValidationError("window must be longer than zero, e.g. 2h")
        key = value.get("key", "order")
        if key not in DIGEST_KEYS:
            raise ValidationError(f"key is order or customer, got {key!r}")
        return {"window": window, "key": key}
