"""Message templates: sandboxed Jinja2 with strict undefined names, one language per message.

A template is a folder ``<name>/`` with ``subject.txt``, ``body.txt`` and
optionally ``body.html``, written once, in English, with its text inside
``{% trans %}`` blocks and ``_()`` calls (Jinja2's i18n extension). The
translations are gettext catalogs, one ``.po`` per language in ``_locales/``
(see :mod:`workers.catalogs` and docs/translations.md). The language of a
message is chosen once per template: the customer's locale (``sr-latn``, then
``sr``), then the shop's default, then English, taking the first language that
translates every string the template uses. A folder ``<name>/<locale>/`` with
its own ``subject.txt`` (a full copy in that language, as rule packs made them
before catalogs) still counts and is used as it is.

Search path: TEMPLATES_DIR, the rule pack's ``templates/``, the built-in ones;
for a shop, each folder's ``_shops/<shop domain>/`` comes before all of them, so
one file (``_layout/email.html``, ``review_invite/subject.txt``) or a ``.po`` with
only the changed strings replaces the built-in one for that shop alone.

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

from jinja2 import TemplateError, TemplateNotFound, meta
from jinja2.ext import GETTEXT_FUNCTIONS, extract_from_ast
from jinja2.sandbox import SandboxedEnvironment

from aftersale.core import logs
from aftersale.core.catalogs import for_language, locale_candidates
from aftersale.core.events import FIELDS
from aftersale.workers import catalogs
from aftersale.workers.template_env import make_environment
from aftersale.workers.template_filters import LINKS_KEY

FILES = ("subject.txt", "body.txt", "body.html")
#: canonical fields that are lists: a missing one is an empty list, so loops just run zero times
LIST_FIELDS = frozenset(
    {"line_items", "tags", "tracking_numbers", "tracking_urls", "discount_codes", "ids"}
)
#: the language templates are written in (their msgids)
BASE_LOCALE = "en"
log = logs.get_logger("workers.render")


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
        self.env = make_environment(self.folders)
        self._envs: dict[str, SandboxedEnvironment] = {}
        self._languages: dict[tuple, catalogs.Language] = {}
        self._msgids: dict[tuple, frozenset] = {}
        self._files: dict[tuple, tuple] = {}
        self._reported: set[tuple] = set()
        self._found: dict[tuple, object] = {}

    def exists(self, name: str, shop: str | None = None) -> bool:
        return self._has(f"{name}/subject.txt", shop)

    def shops(self) -> list[str]:
        """Shop domains with an override folder (``_shops/<domain>/``) on the search path."""
        found = set()
        for folder in self.folders:
            base = folder / catalogs.SHOPS_DIR
            if base.is_dir():
                found.update(c.name for c in base.iterdir() if c.is_dir())
        return sorted(d for d in found if catalogs.SHOP_NAME.match(d))

    def locales(self, name: str, shop: str | None = None) -> list[str]:
        """The languages a template is fully translated into, besides English."""
        candidates = set(self._catalog_locales(shop))
        for folder in self._search(shop):
            base = folder / name
            if base.is_dir():
                candidates.update(c.name for c in base.iterdir() if (c / "subject.txt").exists())
        candidates.discard(BASE_LOCALE)
        return sorted(c for c in candidates if self._available(name, c, shop))

    def choose_locale(self, name: str, locales: list[str], shop: str | None = None) -> str | None:
        """The first of ``locales`` the template is translated into; None means English."""
        for locale in locales:
            if locale == BASE_LOCALE:
                return None
            if self._available(name, locale, shop):
                return locale
        return None

    def render(self, name: str, context: dict, locales: list[str], links=None) -> Rendered:
        """Render subject, text and HTML in one language.

        Args:
            name: the template folder.
            context: subjects of the event plus ``shop``, ``action`` (as workers build it);
                ``shop.domain`` picks the shop's overrides.
            locales: preferred languages, most wanted first (see :func:`locale_candidates`).
            links: the message's :class:`~workers.message_links.MessageLinks`; link filters
                need it.

        Raises:
            TemplateProblem: missing files, a file does not render, or a catalog does not
                read; names the file.
        """
        shop = (context.get("shop") or {}).get("domain")
        if not self.exists(name, shop):
            raise TemplateProblem(f"template {name!r} not found (it needs subject.txt)")
        try:
            locale = self.choose_locale(name, locales, shop)
            strings = self.language(locale or BASE_LOCALE, shop)
        except catalogs.CatalogProblem as exc:
            raise TemplateProblem(str(exc)) from exc
        folder = f"{name}/{locale}" if locale and self._copied(name, locale, shop) else name
        language = locale or BASE_LOCALE
        ctx = complete_context(context)
        ctx["locale"] = language
        ctx["shop"] = shop_in_language(ctx.get("shop"), language)
        ctx["message"] = {"marketing": False, "template": name}
        ctx["preferences_url"] = ""  # the preference centre, in marketing mail only
        if links is not None:
            links = links.with_locale(language)
            ctx[LINKS_KEY] = links
            ctx["message"]["marketing"] = links.marketing
            ctx["preferences_url"] = links.preferences() if links.marketing else ""
            ctx["storefront"] = links.site.summary()
        with catalogs.active(strings.translations):
            parts = {"subject.txt": self._render_file(f"{folder}/subject.txt", ctx, shop)}
            # the HTML's <title> repeats the subject, as mail clients and "view online" show it
            ctx["message"]["subject"] = " ".join(parts["subject.txt"].split())
            for file in FILES[1:]:
                parts[file] = self._render_file(f"{folder}/{file}", ctx, shop)
        if parts["body.txt"] is None and parts["body.html"] is None:
            raise TemplateProblem(f"template {folder!r} needs body.txt or body.html")
        subject = ctx["message"]["subject"]
        text = (
            parts["body.txt"] if parts["body.txt"] is not None else html_to_text(parts["body.html"])
        )
        return Rendered(name, language, subject, tidy_text(text), parts["body.html"])

    def language(self, locale: str, shop: str | None = None) -> catalogs.Language:
        """The catalogs of ``locale`` along the search path merged, the shop's on top."""
        key = (locale, shop)
        if key not in self._languages:
            paths = [
                found
                for folder in reversed(self._search(shop))
                if (found := catalogs.catalog_files(folder).get(locale))
            ]
            self._languages[key] = catalogs.merged(paths)
        return self._languages[key]

    def environment(self, shop: str | None = None) -> SandboxedEnvironment:
        """The shop's sandbox: its override folders first on the loader's path."""
        search = self._search(shop)
        if search == self.folders:
            return self.env
        if shop not in self._envs:
            self._envs[shop] = make_environment(search)
        return self._envs[shop]

    def messages(self, name: str, shop: str | None = None) -> frozenset:
        """Every message (``(context, msgid)``) the template's files and the files they name
        (layout, macros) use."""
        key = (name, shop)
        if key not in self._msgids:
            found: set = set()
            todo = [f"{name}/{file}" for file in FILES]
            seen: set[str] = set()
            while todo:
                path = todo.pop()
                if path in seen or not self._has(path, shop):
                    continue
                seen.add(path)
                used, named = self._file_messages(path, shop)
                found.update(used)
                todo.extend(named)
            self._msgids[key] = frozenset(found)
        return self._msgids[key]

    def _file_messages(self, path: str, shop: str | None) -> tuple[frozenset, tuple]:
        """One file's messages and the files it names, parsed once per search path (the
        layout and macros are shared by every template)."""
        key = (tuple(self._search(shop)), path)
        if key not in self._files:
            env = self.environment(shop)
            try:
                tree = env.parse(env.loader.get_source(env, path)[0])
            except TemplateError as exc:
                where = f"{path}:{exc.lineno}" if getattr(exc, "lineno", None) else path
                raise TemplateProblem(f"{where}: {exc}") from exc
            calls = extract_from_ast(tree, GETTEXT_FUNCTIONS)
            used = frozenset(m for _, func, msg in calls if (m := _msgid(func, msg)))
            named = tuple(p for p in meta.find_referenced_templates(tree) if p is not None)
            self._files[key] = (used, named)
        return self._files[key]

    def _available(self, name: str, locale: str, shop: str | None) -> bool:
        if self._copied(name, locale, shop):
            return True
        if locale not in self._catalog_locales(shop):
            return False
        used = self.messages(name, shop)
        missing = used - self.language(locale, shop).known
        if used and missing and (name, locale, shop) not in self._reported:
            # said once per process: the mail goes out whole in the next language meanwhile
            self._reported.add((name, locale, shop))
            log.warning(
                "template.translation_incomplete",
                template=name,
                locale=locale,
                shop=shop,
                missing=len(missing),
                first=str(sorted(missing, key=str)[0][1])[:80],
            )
        return bool(used) and not missing

    def _copied(self, name: str, locale: str, shop: str | None) -> bool:
        """A full copy of the template in ``<name>/<locale>/`` (the way before catalogs)."""
        return self._has(f"{name}/{locale}/subject.txt", shop)

    def _catalog_locales(self, shop: str | None) -> set[str]:
        """Languages with a catalog on the shop's search path (looked up once per process,
        like the catalogs themselves: a new language is picked up on the next start)."""
        if ("locales", shop) not in self._found:
            found: set[str] = set()
            for folder in self._search(shop):
                found.update(catalogs.catalog_files(folder))
            self._found[("locales", shop)] = found
        return self._found[("locales", shop)]

    def _search(self, shop: str | None) -> list[Path]:
        """The shop's override folders that exist, then the search path."""
        if ("search", shop) not in self._found:
            own = [catalogs.shop_folder(f, shop) for f in self.folders]
            found = [f for f in own if f is not None and f.is_dir()]
            self._found[("search", shop)] = found + self.folders
        return self._found[("search", shop)]

    def _render_file(self, path: str, ctx: dict, shop: str | None) -> str | None:
        if not self._has(path, shop):
            return None
        try:
            return self.environment(shop).get_template(path).render(ctx)
        except TemplateError as exc:
            where = f"{path}:{exc.lineno}" if getattr(exc, "lineno", None) else path
            raise TemplateProblem(f"{where}: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, KeyError) as exc:
            # A value of an unexpected type (a string where a number goes), or a translation
            # naming a placeholder the template does not pass: the template's or the
            # catalog's fault, and sending again will not fix it, so say where.
            raise TemplateProblem(f"{path}: {type(exc).__name__}: {exc}") from exc

    def _has(self, path: str, shop: str | None = None) -> bool:
        """Whether the file is on the shop's search path.

        Asked through Jinja's template cache (at most one ``stat`` a second to
        see the file is unchanged, RecheckingLoader) rather than by reading the
        file: a mail asked this five times, and reading was a tenth of its
        render time. A file that does not compile exists; rendering it says
        what is wrong.
        """
        env = self.environment(shop)
        try:
            env.get_template(path)
        except TemplateNotFound:
            return False
        except TemplateError:
            return True
        return True


def _msgid(func: str, message) -> tuple | None:
    """A message as catalogs key it: ``(context, msgid)``, a plural msgid being a pair."""
    parts = [message] if isinstance(message, str) else [m for m in message if isinstance(m, str)]
    context = parts.pop(0) if func in ("pgettext", "npgettext") and parts else None
    if func in ("ngettext", "npgettext") and len(parts) >= 2:
        return (context, tuple(parts[:2]))
    return (context, parts[0]) if parts else None


def shop_in_language(shop: dict | None, language: str) -> dict | None:
    """``shop`` with ``name`` as the shop writes it in ``language`` (``sr-latn``, then ``sr``),
    from settings' ``shop_name_by_language``: a store named in Latin script that also mails
    in Russian or Serbian Cyrillic names itself in that script there."""
    name = for_language((shop or {}).get("names"), language)
    return {**shop, "name": name} if name else shop


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
