"""Message templates: sandboxed Jinja2 with strict undefined names, per-locale variants.

A template is a folder ``<name>/`` with ``subject.txt``, ``body.txt`` and
optionally ``body.html``; ``<name>/<locale>/`` holds translations. Files are
looked up per file, first in the customer's locale (``sr-latn``, then ``sr``),
then the shop's default locale, then the folder itself. A name the template
uses but the context lacks is an error, never an empty string in a customer's
inbox; the sandbox keeps templates away from Python internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, pass_context
from jinja2.sandbox import SandboxedEnvironment

from aftersale.events import parse_time

FILES = ("subject.txt", "body.txt", "body.html")


class TemplateProblem(Exception):
    """The template is missing or does not render with this event; retrying will not help."""


@dataclass(frozen=True)
class Rendered:
    template: str
    locale: str
    subject: str
    text: str
    html: str | None


class Renderer:
    def __init__(self, folders: list[Path]):
        self.folders = [Path(f) for f in folders]
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader([str(f) for f in self.folders]),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters.update(
            money=money_filter, date=date_filter, datetime=datetime_filter, number=number_filter
        )

    def exists(self, name: str) -> bool:
        return any(
            (folder / name / "body.txt").exists() or (folder / name / "body.html").exists()
            for folder in self.folders
        )

    def render(self, name: str, context: dict, locales: list[str]) -> Rendered:
        """Render subject, text and HTML; raise TemplateProblem with the template file named."""
        chosen_locale = None
        parts = {}
        for file in FILES:
            path, locale = self._find(name, file, locales)
            if path is None:
                parts[file] = None
                continue
            chosen_locale = chosen_locale or locale
            ctx = {**context, "locale": locale or (locales[-1] if locales else "en")}
            try:
                parts[file] = self.env.get_template(path).render(ctx)
            except TemplateError as exc:
                raise TemplateProblem(f"{path}: {exc}") from exc
        if parts["subject.txt"] is None or (
            parts["body.txt"] is None and parts["body.html"] is None
        ):
            raise TemplateProblem(
                f"template {name!r} needs subject.txt and body.txt (or body.html)"
            )
        subject = " ".join(parts["subject.txt"].split())
        text = (
            parts["body.txt"] if parts["body.txt"] is not None else html_to_text(parts["body.html"])
        )
        return Rendered(
            name, chosen_locale or "default", subject, text.strip() + "\n", parts["body.html"]
        )

    def _find(self, name: str, file: str, locales: list[str]) -> tuple[str | None, str | None]:
        for locale in locales:
            candidate = f"{name}/{locale}/{file}"
            if self._has(candidate):
                return candidate, locale
        candidate = f"{name}/{file}"
        return (candidate, None) if self._has(candidate) else (None, None)

    def _has(self, path: str) -> bool:
        try:
            self.env.loader.get_source(self.env, path)
        except TemplateNotFound:
            return False
        return True


def locale_candidates(*locales: str | None) -> list[str]:
    """``"sr-Latn-RS", "en"`` -> ``["sr-latn-rs", "sr-latn", "sr", "en"]``: most specific first."""
    found: list[str] = []
    for locale in locales:
        if not locale:
            continue
        parts = locale.replace("_", "-").lower().split("-")
        for n in range(len(parts), 0, -1):
            candidate = "-".join(parts[:n])
            if candidate not in found:
                found.append(candidate)
    return found


def _babel_locale(locale: str | None) -> Locale:
    try:
        return Locale.parse((locale or "en").replace("-", "_"), sep="_")
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse((locale or "en").split("-")[0].split("_")[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse("en")


@pass_context
def money_filter(ctx, amount, currency: str | None = None):
    """``{{ order.total_price | money(order.currency) }}`` -> ``4.590,00 RSD`` in Serbian."""
    if amount is None:
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    currency = currency or (ctx.get("order") or {}).get("currency")
    locale = _babel_locale(ctx.get("locale"))
    if not currency:
        return format_decimal(value, locale=locale)
    return format_currency(value, currency, locale=locale)


@pass_context
def number_filter(ctx, value):
    return format_decimal(Decimal(str(value)), locale=_babel_locale(ctx.get("locale")))


def _moment(value) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else parse_time(str(value))


@pass_context
def date_filter(ctx, value, format: str = "long"):
    moment = _moment(value)
    return (
        ""
        if moment is None
        else format_date(moment.date(), format=format, locale=_babel_locale(ctx.get("locale")))
    )


@pass_context
def datetime_filter(ctx, value, format: str = "medium"):
    moment = _moment(value)
    return (
        ""
        if moment is None
        else format_datetime(moment, format=format, locale=_babel_locale(ctx.get("locale")))
    )


def html_to_text(html: str) -> str:
    """A readable text part from HTML when a template has no body.txt."""
    import re
    from html import unescape

    text = re.sub(r"(?is)<(script|style).*?</\1>", "", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h[1-6]>|</li>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"\n{3,}", "\n\n", unescape(text)).strip()
