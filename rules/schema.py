"""Marshmallow schemas for rule files and ``settings.yaml``.

Schemas check shapes and scalar values; the loader compiles conditions and
cross-checks names (templates, duplicate rules), then maps every error back
to its YAML position. A rule's ``do:`` items are checked one by one against
the step schemas in :mod:`aftersale.rules.step_schemas`.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import time as dt_time
from datetime import timedelta

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from aftersale.core.events import EVENT_KINDS
from aftersale.core.preferences import BadCategory, parse_category
from aftersale.core.storefront import StorefrontSchema
from aftersale.rules.delivery import delivery_field
from aftersale.rules.durations import parse_duration
from aftersale.rules.errors import suggest
from aftersale.rules.model import ONCE_PER
from aftersale.rules.promise_fields import CancelOn, Digest, SendAt
from aftersale.rules.recommend_settings import RecommendSchema, RecommendSettings
from aftersale.rules.repurchase import REPURCHASE_DUE, repurchase_wait
from aftersale.rules.settings import CONSENT_BASES, WooCommerceSchema

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: a language tag as settings take it: ``ru``, ``sr-Cyrl``, ``pt_BR``
LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z]{2,4})?$"
LOCALE_ERROR = "a language code such as en, ru, sr-cyrl or pt-br"


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
        if isinstance(value, dict) and value.get("until") == REPURCHASE_DUE:
            return repurchase_wait(value)
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


class Category(fields.Field):
    """``transactional``, or ``marketing/<sub-category>`` (plain ``marketing`` is
    ``marketing/offers``): loads as ``(category, subcategory or None)``."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_category(value)
        except BadCategory as exc:
            raise ValidationError(str(exc)) from exc


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


class DkimSchema(Schema):
    """``dkim:`` for a shop sending from its own domain; the key file is read by the loader."""

    class Meta:
        unknown = RAISE

    domain = fields.String(required=True)
    selector = fields.String(required=True)
    #: a PEM file, relative to the rules folder or absolute
    key_file = fields.String(required=True)


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
    cancel_on = CancelOn(load_default=lambda: {"order": (), "customer": ()})
    recheck = fields.Boolean(load_default=True)
    on_disable = fields.String(load_default="drain", validate=validate.OneOf(("drain", "cancel")))
    send_at = SendAt(load_default=None)
    digest = Digest(load_default=None)
    once_per = OncePer(load_default=lambda: {"subject": "event", "within": None})
    late = Late(load_default=None)
    wait_for = WaitFor(load_default=None)
    mode = fields.String(
        load_default="single", validate=validate.OneOf(("single", "restart", "queued"))
    )
    quiet_hours = fields.Boolean(load_default=None)
    on_cap = fields.String(load_default="skip", validate=validate.OneOf(("skip", "defer")))
    category = Category(
        required=True,
        error_messages={
            "required": "category is required: 'transactional' (order and shipping information,"
            " always sent) or 'marketing/<sub-category>' (needs consent, honours unsubscribes,"
            " preferences and the frequency cap), e.g. marketing/review_requests"
        },
    )
    enabled = fields.Boolean(load_default=True)
    shops = fields.List(fields.String(), load_default=list)
    do = fields.List(
        fields.Raw(),
        required=True,
        validate=validate.Length(min=1, error="a rule needs at least one step"),
    )


class SettingsSchema(StrictSchema):
    sender = fields.String(load_default=None)
    reply_to = fields.String(load_default=None)
    default_locale = fields.String(
        load_default="en", validate=validate.Regexp(LOCALE, error=LOCALE_ERROR)
    )
    timezone = TimeZone(load_default="UTC")
    shop_name = fields.String(load_default=None)
    #: the shop's name as written in a language (its script, its customers' spelling)
    shop_name_by_language = fields.Dict(
        keys=fields.String(validate=validate.Regexp(LOCALE, error=LOCALE_ERROR)),
        values=fields.String(validate=validate.Length(min=1, max=200)),
        load_default=dict,
    )
    storefront = fields.Nested(StorefrontSchema, load_default=lambda: StorefrontSchema().load({}))
    quiet_hours = fields.Nested(QuietHoursSchema, load_default=None)
    frequency_cap = fields.Nested(FrequencyCapSchema, load_default=None)
    dkim = fields.Nested(DkimSchema, load_default=None)
    #: the legal basis for marketing: explicit consent, or existing customers' soft opt-in
    consent = fields.String(load_default="explicit", validate=validate.OneOf(CONSENT_BASES))
    #: the WooCommerce plugin meta read for consent and language (rules/settings.py)
    woocommerce = fields.Nested(WooCommerceSchema, load_default=None)
    #: what order statuses mean, estimated delivery (rules/delivery.py)
    delivery = delivery_field()
    #: the shop's logo for message templates (``shop.logo_url``)
    logo_url = fields.Url(load_default=None, schemes={"https", "http"})
    #: the goes-with model and repurchase cycles (rules/recommend_settings.py)
    recommend = fields.Nested(RecommendSchema, load_default=RecommendSettings)
    #: per-shop overrides: {shop domain: {any of the keys above}}
    shops = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
