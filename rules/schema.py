"""Marshmallow schemas for rule files, rule steps and ``settings.yaml``.

Schemas check shapes and scalar values; the loader compiles conditions and
cross-checks names (templates, duplicate rules), then maps every error back
to its YAML position.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import time as dt_time
from datetime import timedelta

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates

from aftersale.core.events import EVENT_KINDS
from aftersale.core.storefront import StorefrontSchema
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import suggest
from aftersale.rules.model import CATEGORIES, ONCE_PER

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
EMAIL_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class Duration(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class EventKinds(fields.Field):
    """One event kind or a list of them, each a known canonical kind."""

    def _deserialize(self, value, attr, data, **kwargs):
        kinds = [value] if isinstance(value, str) else value
        if not isinstance(kinds, list) or not kinds:
            raise ValidationError(
                "expected an event kind or a list of event kinds, e.g. shipment.delivered"
            )
        problems = {}
        for i, kind in enumerate(kinds):
            if not isinstance(kind, str) or kind not in EVENT_KINDS:
                problems[i] = [f"unknown event kind {kind!r}{suggest(kind, EVENT_KINDS)}"]
        if problems:
            raise ValidationError(problems if isinstance(value, list) else problems[0])
        return tuple(dict.fromkeys(kinds))


class Wait(fields.Field):
    """``7d``, or ``{until: fulfillment.estimated_delivery_at, offset: 1d}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            unknown = set(value) - {"until", "offset"}
            if unknown:
                raise ValidationError(
                    f"unknown key {sorted(unknown)[0]!r} in wait: use until and offset"
                )
            until = value.get("until")
            if not isinstance(until, str) or not until:
                raise ValidationError("wait.until is a field path, e.g. order.created_at")
            offset = value.get("offset", "0m")
            try:
                return {"until": until, "offset": parse_duration(offset)}
            except ValueError as exc:
                raise ValidationError(f"offset: {exc}") from exc
        try:
            return {"until": None, "offset": parse_duration(value)}
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class WaitFor(fields.Field):
    """``{event: shipment.delivered, timeout: 14d, on_timeout: send}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError(
                "wait_for is {event: KIND or [KINDS], timeout: DURATION, on_timeout: send|skip}"
            )
        unknown = set(value) - {"event", "timeout", "on_timeout"}
        if unknown:
            name = sorted(unknown)[0]
            raise ValidationError(
                f"unknown key {name!r} in wait_for{suggest(name, ('event', 'timeout', 'on_timeout'))}"
            )
        kinds = EventKinds()._deserialize(value.get("event"), attr, data)
        if "timeout" not in value:
            raise ValidationError("wait_for needs a timeout, e.g. timeout: 14d")
        try:
            timeout = parse_duration(value["timeout"])
        except ValueError as exc:
            raise ValidationError(f"timeout: {exc}") from exc
        on_timeout = value.get("on_timeout", "send")
        if on_timeout not in ("send", "skip"):
            raise ValidationError("on_timeout is send or skip")
        return {"events": kinds, "timeout": timeout, "on_timeout": on_timeout}


class Late(fields.Field):
    """``send`` (the default), or ``{skip_after: 24h}``: not sent more than that after due."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "send":
            return None
        if isinstance(value, dict) and set(value) == {"skip_after"}:
            try:
                return parse_duration(value["skip_after"])
            except ValueError as exc:
                raise ValidationError(f"skip_after: {exc}") from exc
        raise ValidationError("late is 'send' or {skip_after: DURATION}, e.g. {skip_after: 24h}")


class OncePer(fields.Field):
    """``order``, or ``{customer: 90d}``: once per subject, or once per subject per window."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            subject, within = value, None
        elif isinstance(value, dict) and len(value) == 1:
            ((subject, window),) = value.items()
            try:
                within = parse_duration(window)
            except ValueError as exc:
                raise ValidationError(f"{subject}: {exc}") from exc
        else:
            raise ValidationError(
                "once_per is one of event, order, fulfillment, customer, or {customer: 90d}"
            )
        if subject not in ONCE_PER:
            raise ValidationError(
                f"unknown once_per {subject!r}{suggest(str(subject), ONCE_PER)};"
                f" one of {', '.join(ONCE_PER)}"
            )
        return {"subject": subject, "within": within}


class ClockTime(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
        if not match:
            raise ValidationError(f"expected a time of day like 21:00, got {text!r}")
        return dt_time(int(match.group(1)), int(match.group(2)))


class QuietHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    start = ClockTime(required=True)
    end = ClockTime(required=True)


class FrequencyCapSchema(Schema):
    class Meta:
        unknown = RAISE

    max = fields.Integer(required=True, validate=validate.Range(min=1))
    per = Duration(required=True)


class TimeZone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"unknown time zone {name!r}, e.g. Europe/Belgrade") from exc
        return name


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class RuleSchema(StrictSchema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            RULE_NAME, error="rule names are lower-case letters, digits, - and _ (at most 64)"
        ),
    )
    description = fields.String(load_default="")
    on = EventKinds(required=True)
    if_ = fields.Raw(data_key="if", load_default=None, allow_none=True)
    wait = Wait(load_default=lambda: {"until": None, "offset": timedelta(0)})
    cancel_on = EventKinds(load_default=())
    once_per = OncePer(load_default=lambda: {"subject": "event", "within": None})
    late = Late(load_default=None)
    wait_for = WaitFor(load_default=None)
    mode = fields.String(
        load_default="single", validate=validate.OneOf(("single", "restart", "queued"))
    )
    quiet_hours = fields.Boolean(load_default=None)
    on_cap = fields.String(load_default="skip", validate=validate.OneOf(("skip", "defer")))
    category = fields.String(
        required=True,
        validate=validate.OneOf(CATEGORIES),
        error_messages={
            "required": "category is required: 'transactional' (order and shipping information, always sent)"
            " or 'marketing' (needs consent, honours unsubscribes and the frequency cap)"
        },
    )
    enabled = fields.Boolean(load_default=True)
    shops = fields.List(fields.String(), load_default=list)
    do = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(min=1, error="a rule needs at least one step"),
    )


class EmailStepSchema(StrictSchema):
    template = fields.String(required=True, validate=validate.Length(min=1))
    to = fields.String(
        load_default="customer",
        validate=lambda v: (
            v == "customer"
            or bool(EMAIL_ADDRESS.match(v))
            or _fail("'to' is 'customer' or an email address")
        ),
    )
    reply_to = fields.String(load_default=None, validate=validate.Email())


class InlineTemplate(fields.String):
    """A short template written in the rule (SMS text, note); a syntax error fails the load."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        _check_template(text)
        return text


class Tags(fields.Field):
    """``review-requested``, ``"a, b"`` or ``[a, b]`` -> ``["a", "b"]``."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise ValidationError("tags are a word, a comma-separated string or a list of words")
        tags = [t.strip() for t in items if t.strip()]
        if not tags:
            raise ValidationError("at least one tag")
        if any(len(t) > 255 for t in tags):
            raise ValidationError("a tag is at most 255 characters")
        return list(dict.fromkeys(tags))


class DurationText(fields.String):
    """A duration, checked now and kept as written (action params are stored as JSON)."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_duration(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        return text


class SmsStepSchema(StrictSchema):
    text = InlineTemplate(required=True, validate=validate.Length(min=1, max=640))
    to = fields.String(
        load_default="customer",
        validate=lambda v: (
            v == "customer"
            or bool(re.match(r"^\+[1-9]\d{6,14}$", v))
            or _fail("'to' is 'customer' or a number in E.164 form, e.g. +381641234567")
        ),
    )


class WebhookStepSchema(StrictSchema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    body = fields.Raw(load_default=None)

    @validates("body")
    def _templates_in_body(self, value, **kwargs):
        for text in _strings(value):
            _check_template(text)


class TagStepSchema(StrictSchema):
    tags = Tags(required=True)


class NoteStepSchema(StrictSchema):
    note = InlineTemplate(required=True, validate=validate.Length(min=1, max=5000))


class DiscountCodeStepSchema(StrictSchema):
    value = fields.Decimal(required=True, validate=validate.Range(min=0, min_inclusive=False))
    type = fields.String(
        load_default="percentage", validate=validate.OneOf(("percentage", "fixed_amount"))
    )
    expires_in = DurationText(load_default=None)
    prefix = fields.String(
        load_default=None,
        validate=validate.Regexp(
            r"^[A-Z0-9]{1,16}$", error="prefix: 1 to 16 capital letters or digits"
        ),
    )
    title = fields.String(load_default=None)

    @post_load
    def _as_json(self, data, **kwargs):
        if data["type"] == "percentage" and data["value"] > 100:
            raise ValidationError({"value": ["a percentage is at most 100"]})
        data["value"] = str(data["value"])  # params are stored as JSON
        return data


#: step type -> (params schema, the parameter a scalar shorthand fills)
STEP_TYPES: dict[str, tuple[type[Schema], str]] = {
    "email": (EmailStepSchema, "template"),
    "sms": (SmsStepSchema, "text"),
    "webhook": (WebhookStepSchema, "url"),
    "tag_order": (TagStepSchema, "tags"),
    "tag_customer": (TagStepSchema, "tags"),
    "note_order": (NoteStepSchema, "note"),
    "discount_code": (DiscountCodeStepSchema, "value"),
}


class SettingsSchema(StrictSchema):
    sender = fields.String(load_default=None)
    reply_to = fields.String(load_default=None)
    default_locale = fields.String(
        load_default="en", validate=validate.Regexp(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")
    )
    timezone = TimeZone(load_default="UTC")
    shop_name = fields.String(load_default=None)
    storefront = fields.Nested(StorefrontSchema, load_default=lambda: StorefrontSchema().load({}))
    quiet_hours = fields.Nested(QuietHoursSchema, load_default=None)
    frequency_cap = fields.Nested(FrequencyCapSchema, load_default=None)
    #: per-shop overrides: {shop domain: {any of the keys above}}
    shops = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)


def _fail(message: str):
    raise ValidationError(message)


def _check_template(text: str) -> None:
    try:
        SandboxedEnvironment().parse(text)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"template syntax error: {exc.message} (line {exc.lineno})") from exc


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def load_step(raw) -> tuple[str, dict]:
    """Validate one ``do:`` item; errors are keyed so the loader can place them."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValidationError(
            f"each step is one mapping like 'email: {{template: review_invite}}', got {raw!r}"
        )
    ((kind, params),) = raw.items()
    if kind not in STEP_TYPES:
        hint = suggest(kind, STEP_TYPES) or f" (available: {', '.join(STEP_TYPES)})"
        raise ValidationError({kind: [f"unknown step {kind!r}{hint}"]})
    schema_class, shorthand = STEP_TYPES[kind]
    if not isinstance(params, dict):
        params = {shorthand: params}
    try:
        return kind, schema_class().load(params)
    except ValidationError as exc:
        raise ValidationError({kind: exc.messages}) from exc
