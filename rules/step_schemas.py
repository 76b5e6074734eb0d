"""Marshmallow schemas for the steps under a rule's ``do:``, one per step type.

:func:`load_step` validates one ``do:`` item against :data:`STEP_TYPES`; a
scalar is shorthand for the step's main parameter (``email: review_invite``).
Inline templates (SMS text, notes, webhook bodies) are parsed here, so a
syntax error fails the load rather than the send.
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import suggest
from aftersale.rules.schema import StrictSchema

EMAIL_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class EmailStepSchema(StrictSchema):
    template = fields.String(required=True, validate=validate.Length(min=1))
    #: auto: the order's contact email for mail about an order, else the customer's current
    #: email; order / customer: that one; or a fixed address (workers/promises.py)
    to = fields.String(
        load_default="auto",
        validate=lambda v: (
            v in ("auto", "order", "customer")
            or bool(EMAIL_ADDRESS.match(v))
            or _fail("'to' is auto, order, customer or an email address")
        ),
    )
    reply_to = fields.String(load_default=None, validate=validate.Email())
    #: a refund's note is written by staff for staff; the mail shows it only when asked
    show_refund_note = fields.Boolean()


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
