"""Filters and functions templates may use: money, dates and numbers per locale, and links.

Formatting follows the locale of the template being rendered (Babel/CLDR):
``{{ order.total_price | money(order.currency) }}`` is ``1.234,50 RSD`` in
Serbian and ``1 234,50 RSD`` in Russian. Link filters read the message's
:class:`~workers.message_links.MessageLinks` from the context; the signed
ones (review, help, unsubscribe) go through the web app, the plain ones
(product, tracking, returns) point straight at the shop or the carrier.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import (
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
)
from jinja2 import TemplateRuntimeError, pass_context
from markupsafe import Markup

from aftersale.core.events import parse_time
from aftersale.core.storefront import handleize

#: the built-in ``sr`` templates are written in Latin script, as most Serbian shops write;
#: CLDR's plain ``sr`` is Cyrillic, so dates and money would not match the text around them
FORMAT_LOCALES = {"sr": "sr_Latn", "sr-latn": "sr_Latn", "sr-cyrl": "sr_Cyrl"}
LINKS_KEY = "_links"
#: the date format a plain ``| date`` uses: CLDR's long form, except where shops of that
#: language write dates otherwise (Serbian mail says ``20. 11. 2026.``, the medium form)
DATE_FORMATS = {"sr": "medium"}


class MissingLinks(TemplateRuntimeError):
    """A link filter was used where no message is being composed (no MessageLinks in context),
    e.g. in an SMS text; a TemplateError, so every renderer reports it as a template problem."""


@lru_cache(maxsize=256)
def babel_locale(locale: str | None) -> Locale:
    code = FORMAT_LOCALES.get((locale or "en").lower(), locale or "en")
    try:
        return Locale.parse(code.replace("-", "_"), sep="_")
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(code.split("-")[0].split("_")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse("en")


@pass_context
def money(ctx, amount, currency: str | None = None):
    """Amount in the template's locale; whole amounts in currencies without minor units
    (RSD in practice) drop the ``,00``, a fraction is never dropped."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    currency = currency or (ctx.get("order") or {}).get("currency")
    locale = babel_locale(ctx.get("locale"))
    if not currency:
        return format_decimal(value, locale=locale)
    return _currency(value, currency, locale)


@lru_cache(maxsize=4096)
def _currency(value: Decimal, currency: str, locale: Locale) -> str:
    """Babel's formatting is a tenth of a mail's CPU; prices and totals repeat, so it is
    kept per (amount, currency, locale). The locale is passed parsed: given its name,
    Babel parses it again on every call, half the cost of formatting an amount."""
    whole = value == value.to_integral_value()
    digits = whole or get_currency_precision(currency) > 0
    return format_currency(value, currency, locale=locale, currency_digits=digits)


@pass_context
def percent(ctx, value):
    """A percentage given in percent (``10`` -> ``10%`` in English, ``10 %`` in German)."""
    if value is None or value == "":
        return ""
    fraction = Decimal(str(value)) / 100
    locale = babel_locale(ctx.get("locale"))
    return format_percent(fraction, locale=locale, decimal_quantization=False)


def strong(value):
    """``<strong>value</strong>`` (escaped) for a value set inside a translated sentence:
    ``_("Tracking number: %(number)s", number=n | strong)`` keeps one msgid for both parts."""
    return Markup("<strong>{}</strong>").format("" if value is None else value)


@pass_context
def number(ctx, value):
    if value is None or value == "":
        return ""
    return format_decimal(Decimal(str(value)), locale=babel_locale(ctx.get("locale")))


def _moment(value) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else parse_time(str(value))


def _local(ctx, moment: datetime) -> datetime:
    """The moment in the shop's time zone (``timezone`` in settings.yaml): an order placed at
    00:30 in Belgrade is a 21 November order there, though it is still the 20th in UTC."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(ZoneInfo(ctx.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return moment


@pass_context
def date(ctx, value, format: str | None = None):
    moment = _moment(value)
    if moment is None:
        return ""
    locale = babel_locale(ctx.get("locale"))
    format = format or DATE_FORMATS.get(locale.language, "long")
    text = format_date(_local(ctx, moment).date(), format=format, locale=locale)
    # CLDR's Russian long date ends in "г." and templates end their sentence themselves
    # ("до 7 декабря 2026 г.."): the year needs no abbreviation there.
    if locale.language == "ru" and text.endswith("г."):
        text = text[:-2].rstrip(" \u00a0\u202f")
    return text


@pass_context
def datetime_(ctx, value, format: str = "medium"):
    moment = _moment(value)
    if moment is None:
        return ""
    return format_datetime(
        _local(ctx, moment), format=format, locale=babel_locale(ctx.get("locale"))
    )


@pass_context
def plural(ctx, count, **forms):
    """The word form for ``count`` in the template's language (CLDR plural rules):
    ``{{ n }} {{ n | plural(one="dan", few="dana", other="dana") }}``; ``other`` is the fallback."""
    form = babel_locale(ctx.get("locale")).plural_form(abs(int(count or 0)))
    return forms.get(form) or forms.get("other") or ""


def line_total(item) -> Decimal | None:
    """Unit price times quantity of a line item (platforms send the unit price)."""
    item = item if isinstance(item, dict) else {}
    try:
        return Decimal(str(item.get("price"))) * int(item.get("quantity") or 1)
    except (InvalidOperation, TypeError, ValueError):
        return None


def plus_days(value, days):
    """A time ``days`` later, e.g. a return deadline: ``event.occurred_at | plus_days(14) | date``."""
    moment = _moment(value)
    return None if moment is None or days is None else moment + timedelta(days=int(days))


def _links(ctx):
    links = ctx.get(LINKS_KEY)
    if links is None:
        raise MissingLinks("link filters work in message templates only")
    return links


def _first_item(value) -> dict:
    """A line item, or an order's first line item: ``order | review_link`` works too."""
    if isinstance(value, dict) and isinstance(value.get("line_items"), list):
        return value["line_items"][0] if value["line_items"] else {}
    return value if isinstance(value, dict) else {}


@pass_context
def review_link(ctx, item):
    """Signed link to the product's review page; the click is recorded (``/r/``)."""
    return _links(ctx).review(_first_item(item))


@pass_context
def help_link(ctx, order=None):
    """Signed link to the shop's support with the order filled in (``/h/``)."""
    return _links(ctx).help(order if isinstance(order, dict) else ctx.get("order"))


@pass_context
def unsubscribe_link(ctx, _subject=None):
    """Signed one-click unsubscribe link for this message's recipient (``/u/``)."""
    return _links(ctx).unsubscribe()


@pass_context
def preferences_link(ctx, _subject=None):
    """Signed link to the preference centre (``/p/``): keep or mute each marketing sub-category."""
    return _links(ctx).preferences()


@pass_context
def tracking_link(ctx, fulfillment):
    """The carrier's tracking page: the platform's URL, else settings' tracking_url pattern."""
    return _links(ctx).site.tracking_url(fulfillment if isinstance(fulfillment, dict) else {})


@pass_context
def product_url(ctx, item):
    return _links(ctx).site.product_url(_first_item(item))


@pass_context
def returns_link(ctx, order=None):
    """The shop's return policy and how-to page ("" when the shop has none configured)."""
    order = order if isinstance(order, dict) else ctx.get("order")
    return _links(ctx).site.returns_url(order, ctx.get("locale") or "")


@pass_context
def survey_link(ctx, order, score):
    """``storefront.survey_url`` with the score filled in ("" when no survey is configured)."""
    return _links(ctx).site.survey_url(order, score, ctx.get("locale") or "")


@pass_context
def product_type(ctx, item):
    """The item's type: from the platform when it sends one, else ``storefront.products``."""
    item = item if isinstance(item, dict) else {}
    return item.get("product_type") or _links(ctx).site.storefront.product(item).get("type") or ""


@pass_context
def product_tags(ctx, item) -> list[str]:
    item = item if isinstance(item, dict) else {}
    own = item.get("tags") or []
    configured = _links(ctx).site.storefront.product(item).get("tags") or []
    return list(dict.fromkeys([*own, *configured]))


@pass_context
def replenishable(ctx, order) -> list[dict]:
    """Line items with a ``replenish_after`` in settings, each with ``replenish_after`` days."""
    storefront = _links(ctx).site.storefront
    found = []
    for item in (order or {}).get("line_items") or []:
        days = storefront.product(item).get("replenish_after")
        if days:
            found.append({**item, "replenish_after": days})
    return found


@pass_context
def cross_sell(ctx, order, limit: int = 3) -> list[dict]:
    """Suggestions for what goes with the order: ``storefront.cross_sell`` by the items' tags
    and types, without what was bought, at most ``limit``."""
    links = _links(ctx)
    storefront = links.site.storefront
    items = (order or {}).get("line_items") or []
    bought = {str(i.get(k)) for i in items for k in ("sku", "title") if i.get(k)}
    found: dict[str, dict] = {}
    for item in items:
        keys = [*product_tags(ctx, item), product_type(ctx, item)]
        for key in keys:
            for suggestion in storefront.cross_sell.get(key, ()):
                if suggestion["title"] in bought or (suggestion.get("sku") or "") in bought:
                    continue
                found.setdefault(suggestion["url"], suggestion)
    return list(found.values())[:limit]


FILTERS = {
    "money": money,
    "plural": plural,
    "plus_days": plus_days,
    "line_total": line_total,
    "slug": lambda value: handleize(str(value or "")),
    "number": number,
    "percent": percent,
    "strong": strong,
    "date": date,
    "datetime": datetime_,
    "review_link": review_link,
    "help_link": help_link,
    "unsubscribe_link": unsubscribe_link,
    "preferences_link": preferences_link,
    "tracking_link": tracking_link,
    "product_url": product_url,
    "returns_link": returns_link,
    "survey_link": survey_link,
    "product_type": product_type,
    "product_tags": product_tags,
    "replenishable": replenishable,
    "cross_sell": cross_sell,
}
