"""Message templates: sandboxed Jinja2 with strict undefined names, one language per message.

A template is a folder ``<name>/`` with ``subject.txt``, ``body.txt`` and
optionally ``body.html``, written in English; ``<name>/<locale>/`` holds a
translation. The language of a message is chosen once per template: the
customer's locale (``sr-latn``, then ``sr``), then the shop's default, then
English, taking the first whose ``subject.txt`` exists on the search path
(TEMPLATES_DIR, the rule pack's ``templates/``, the built-in ones). Every
file of the message then comes from that language, so a translation without
``body.html`` never gets an English HTML part.

Names: a name the event model does not know (``order.totl_price``) is an
error, found when the rules load (see :mod:`workers.template_check`); a known
field this event happens to lack (a customer without a first name) is
``None`` and prints as nothing, so templates say ``{% if customer.first_name %}``.
The sandbox keeps templates away from Python internals. HTML files may
``{% extends "_layout/email.html" %}``; folders starting with ``_`` are not
templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from aftersale.core.events import FIELDS
from aftersale.workers.template_filters import FILTERS, LINKS_KEY

FILES = ("subject.txt", "body.txt", "body.html")
#: canonical fields that are lists: a missing one is an empty list, so loops just run zero times
LIST_FIELDS = frozenset(
    {"line_items", "tags", "tracking_numbers", "tracking_urls", "discount_codes", "ids"}
)
#: the language of the files directly in a template's folder
BASE_LOCALE = "en"


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
            finalize=_blank_none,
        )
        self.env.filters.update(FILTERS)
        self.env.globals.update(
            cross_sell=FILTERS["cross_sell"], replenishable=FILTERS["replenishable"]
        )

    def exists(self, name: str) -> bool:
        return self._has(f"{name}/subject.txt")

    def locales(self, name: str) -> list[str]:
        """The translations a template has (besides the English files in its folder)."""
        found = set()
        for folder in self.folders:
            base = folder / name
            if base.is_dir():
                found.update(
                    child.name for child in base.iterdir() if (child / "subject.txt").exists()
                )
        return sorted(found)

    def choose_locale(self, name: str, locales: list[str]) -> str | None:
        """The first of ``locales`` the template is translated into; None means English."""
        for locale in locales:
            if locale == BASE_LOCALE:
                return None
            if self._has(f"{name}/{locale}/subject.txt"):
                return locale
        return None

    def render(self, name: str, context: dict, locales: list[str], links=None) -> Rendered:
        """Render subject, text and HTML in one language.

        Args:
            name: the template folder.
            context: subjects of the event plus ``shop``, ``action`` (as workers build it).
            locales: preferred languages, most wanted first (see :func:`locale_candidates`).
            links: the message's :class:`~workers.message_links.MessageLinks`; link filters
                need it.

        Raises:
            TemplateProblem: missing files, or a file does not render; names the file.
        """
        if not self.exists(name):
            raise TemplateProblem(f"template {name!r} not found (it needs subject.txt)")
        locale = self.choose_locale(name, locales)
        folder = f"{name}/{locale}" if locale else name
        language = locale or BASE_LOCALE
        ctx = complete_context(context)
        ctx["locale"] = language
        ctx["message"] = {"marketing": False, "template": name}
        if links is not None:
            links = links.with_locale(language)
            ctx[LINKS_KEY] = links
            ctx["message"]["marketing"] = links.marketing
            ctx["storefront"] = links.site.summary()
        parts = {file: self._render_file(f"{folder}/{file}", ctx) for file in FILES}
        if parts["body.txt"] is None and parts["body.html"] is None:
            raise TemplateProblem(f"template {folder!r} needs body.txt or body.html")
        subject = " ".join(parts["subject.txt"].split())
        text = (
            parts["body.txt"] if parts["body.txt"] is not None else html_to_text(parts["body.html"])
        )
        return Rendered(name, language, subject, tidy_text(text), parts["body.html"])

    def _render_file(self, path: str, ctx: dict) -> str | None:
        if not self._has(path):
            return None
        try:
            return self.env.get_template(path).render(ctx)
        except TemplateError as exc:
            where = f"{path}:{exc.lineno}" if getattr(exc, "lineno", None) else path
            raise TemplateProblem(f"{where}: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError) as exc:
            # A value of an unexpected type (a string where a number goes): the template's
            # fault, and sending again will not fix it, so say where.
            raise TemplateProblem(f"{path}: {type(exc).__name__}: {exc}") from exc

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


def message_locales(context: dict, shop_default: str | None) -> list[str]:
    """Customer's language, then the order's, then the shop's default (English comes last anyway)."""
    customer = context.get("customer") or {}
    order = context.get("order") or {}
    return locale_candidates(customer.get("locale"), order.get("locale"), shop_default)


def complete_context(context: dict) -> dict:
    """A copy where every known field of each subject present exists (``None`` or ``[]``).

    Platforms leave out what they do not know; templates should not fail on
    that, only on names that do not exist at all.
    """
    ctx = dict(context)
    for subject, fields in FIELDS.items():
        if isinstance(ctx.get(subject), dict):
            ctx[subject] = _complete(ctx[subject], fields)
    return ctx


def _complete(value: dict, fields: dict) -> dict:
    done = dict(value)
    for key, nested in fields.items():
        present = done.get(key)
        if key in LIST_FIELDS:
            if present is None:
                done[key] = []
            elif nested and isinstance(present, list):
                done[key] = [_complete(v, nested) if isinstance(v, dict) else v for v in present]
        elif nested and isinstance(present, dict):
            done[key] = _complete(present, nested)
        elif key not in done:
            done[key] = None
    return done


def _blank_none(value):
    return "" if value is None else value


def tidy_text(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one newline at the end."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def html_to_text(html: str) -> str:
    """A readable text part from HTML when a template has no body.txt."""
    text = re.sub(r"(?is)<(script|style|head).*?</\1>", "", html)
    text = re.sub(r'(?is)<a\s[^>]*href="([^"]+)"[^>]*>(.*?)</a>', r"\2 (\1)", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h[1-6]>|</li>|</tr>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[ \t]+", " ", unescape(text)).strip()
