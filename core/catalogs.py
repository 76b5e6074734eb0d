"""Gettext catalogs: one ``.po`` per language and domain, read as Babel writes them.

Two domains share the layout below: ``messages`` (the mail templates, see
``workers/render.py``) and ``pages`` (the web pages a customer opens from a mail: the
preference centre and the link pages, ``webhooks/link_pages.py``). The loader lives
here, at the bottom floor, because both the workers and the web app read catalogs and
neither may import the other.

Templates are written once, in English, with their text in ``{% trans %}`` blocks and
``_()`` calls (Jinja2's i18n extension). The translations live beside them::

    templates/_locales/messages.pot                    what pybabel extract finds
    templates/_locales/<lang>/LC_MESSAGES/messages.po  one per language (pybabel init/update)
    templates/_locales/pages.pot, <lang>/LC_MESSAGES/pages.po
                                                       the same for the web pages
    templates/_shops/<shop domain>/_locales/<lang>/LC_MESSAGES/messages.po
                                                       one shop's changed strings only

The ``.po`` files are read directly at start (Babel parses them and builds the same
in-memory catalog a compiled ``.mo`` gives), so a wheel or a checkout works without a
compile step and a translator's edit takes effect on the next start. Fuzzy entries are
left out, as ``pybabel compile`` leaves them out: an unreviewed guess is never sent.

Every folder on the template search path may have catalogs; a string found in a
higher one (TEMPLATES_DIR, then the rule pack's, then the built-in ones, with a shop's
overrides above all of them) wins, so a store changes one sentence without copying the
rest of a language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import NullTranslations, Translations
from jinja2 import pass_eval_context
from markupsafe import Markup

#: the folder of catalogs inside a template folder (``_`` folders are not templates)
LOCALES_DIR = "_locales"
#: the folder of per-shop overrides inside a template folder
SHOPS_DIR = "_shops"
#: the mail templates' catalog domain
DOMAIN = "messages"
#: the customer-facing web pages' catalog domain (templates/_pages/)
PAGES_DOMAIN = "pages"
#: the folder of the web pages' templates inside the built-in template folder
PAGES_DIR = "_pages"
#: a shop domain usable as one folder name (never ``..`` or a path)
SHOP_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")

_ACTIVE: ContextVar[NullTranslations] = ContextVar("aftersale_translations")
_NULL = NullTranslations()


class CatalogProblem(Exception):
    """A ``.po`` file that Babel cannot read; names the file."""


def locale_key(name: str) -> str:
    """A catalog folder name as the renderer compares languages: ``sr_Latn`` -> ``sr-latn``."""
    return name.replace("_", "-").lower()


def locale_candidates(*locales: str | None) -> list[str]:
    """``"sr-Latn-RS", "en"`` -> ``["sr-latn-rs", "sr-latn", "sr", "en"]``: most specific first.

    How a language is looked up everywhere: the renderer's catalogs, the pages' catalogs,
    a shop's name per language."""
    found: list[str] = []
    for locale in locales:
        if not locale:
            continue
        parts = locale_key(locale).split("-")
        for n in range(len(parts), 0, -1):
            candidate = "-".join(parts[:n])
            if candidate not in found:
                found.append(candidate)
    return found


def for_language(values: dict, language: str | None):
    """The entry of ``values`` (keyed by :func:`locale_key`) for ``language``: ``sr-latn-rs``,
    then ``sr-latn``, then ``sr``; None when none is there."""
    if not values:
        return None
    return next((values[c] for c in locale_candidates(language) if c in values), None)


def shop_folder(folder: Path, shop: str | None) -> Path | None:
    """The shop's override folder inside a template folder, when the domain is a safe name."""
    if not shop or not SHOP_NAME.match(shop.lower()):
        return None
    return Path(folder) / SHOPS_DIR / shop.lower()


def catalog_files(folder: Path, domain: str = DOMAIN) -> dict[str, Path]:
    """``{locale key: .po path}`` of one template folder (or shop override folder)."""
    base = Path(folder) / LOCALES_DIR
    found = {}
    if base.is_dir():
        for child in sorted(base.iterdir()):
            po = child / "LC_MESSAGES" / f"{domain}.po"
            if po.is_file():
                found[locale_key(child.name)] = po
    return found


@dataclass(frozen=True)
class Language:
    """One language's strings along the search path, merged: what templates call through
    ``gettext``, and which messages (``(context, msgid)``) it really translates."""

    translations: NullTranslations
    known: frozenset


NO_LANGUAGE = Language(_NULL, frozenset())


def catalog_locale(path: Path) -> Locale | None:
    """The language of ``<lang>/LC_MESSAGES/<domain>.po`` when Babel knows it (``sr_Latn``,
    ``sr-latn``); else None, and the file's own Plural-Forms header decides plurals."""
    try:
        return Locale.parse(Path(path).parent.parent.name.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None


def read_catalog(path: Path) -> Catalog:
    """One ``.po`` as Babel reads it; a file it cannot read is a CatalogProblem naming it."""
    try:
        with path.open("rb") as fp:
            return read_po(fp, locale=catalog_locale(path), abort_invalid=True)
    except (PoFileError, ValueError, OSError) as exc:
        raise CatalogProblem(f"{path}: {exc}") from exc


def merged(paths: Iterable[Path]) -> Language:
    """The catalogs in ``paths``, lowest priority first; a later translation replaces an
    earlier one. Fuzzy and empty entries are left out, as ``pybabel compile`` leaves them."""
    paths = [Path(p) for p in paths]
    if not paths:
        return NO_LANGUAGE
    return _merged(tuple((p, p.stat().st_mtime) for p in paths))


@lru_cache(maxsize=128)
def _merged(files: tuple[tuple[Path, float], ...]) -> Language:
    base = read_catalog(files[0][0])
    for path, _mtime in files[1:]:
        for message in read_catalog(path):
            if message.id and _done(message):
                # setting an id that exists merges only flags and locations: replace it
                base.delete(message.id, context=message.context)
                base[message.id] = message
    buffer = BytesIO()
    write_mo(buffer, base, use_fuzzy=False)
    buffer.seek(0)
    known = frozenset((m.context, m.id) for m in base if m.id and _done(m))
    return Language(Translations(fp=buffer, domain=DOMAIN), known)


def _done(message) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return not message.fuzzy and all(strings)


@contextmanager
def active(translations: NullTranslations):
    """The translations the templates' ``gettext``/``ngettext`` use while rendering one mail
    or page (a context variable: threads and greenlets each see their own)."""
    token = _ACTIVE.set(translations)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def gettext(message: str) -> str:
    return _ACTIVE.get(_NULL).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _ACTIVE.get(_NULL).ungettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return _ACTIVE.get(_NULL).upgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return _ACTIVE.get(_NULL).unpgettext(context, singular, plural, n)


def install_gettext(env) -> None:
    """Wire a Jinja2 environment (with ``jinja2.ext.i18n``) to these functions: newstyle
    gettext, ``{% trans %}`` text trimmed as ``trimmed = true`` in babel.cfg extracts it.
    Mail templates and the web pages share it, so both read the catalogs alike.

    The callables are the ``_template_*`` functions below rather than the extension's
    wrappers. Those do the same (translate, mark safe under autoescape, format with the
    variables) in three calls through the sandbox per ``_()``: ``_`` is an alias
    resolving ``gettext`` at each call, which wraps the function it was given. A mail
    makes twenty such calls; they were a sixth of its render time.
    """
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(
        gettext, ngettext, newstyle=True, pgettext=pgettext, npgettext=npgettext
    )
    env.globals.update(
        _=_template_gettext,
        gettext=_template_gettext,
        ngettext=_template_ngettext,
        pgettext=_template_pgettext,
        npgettext=_template_npgettext,
    )


# What templates call, as jinja2.ext's newstyle wrappers behave: the translation is a
# format string even without variables (so "%%" is always "%"), marked safe under
# autoescape so that ``%`` escapes the variables, never the translator's text.


@pass_eval_context
def _template_gettext(eval_ctx, string: str, /, **variables) -> str:
    return _formatted(eval_ctx, _ACTIVE.get(_NULL).ugettext(string), variables)


@pass_eval_context
def _template_ngettext(eval_ctx, singular: str, plural: str, num: int, /, **variables) -> str:
    variables.setdefault("num", num)
    return _formatted(eval_ctx, _ACTIVE.get(_NULL).ungettext(singular, plural, num), variables)


@pass_eval_context
def _template_pgettext(eval_ctx, context: str, string: str, /, **variables) -> str:
    variables.setdefault("context", context)
    return _formatted(eval_ctx, _ACTIVE.get(_NULL).upgettext(context, string), variables)


@pass_eval_context
def _template_npgettext(
    eval_ctx, context: str, singular: str, plural: str, num: int, /, **variables
) -> str:
    variables.setdefault("context", context)
    variables.setdefault("num", num)
    translated = _ACTIVE.get(_NULL).unpgettext(context, singular, plural, num)
    return _formatted(eval_ctx, translated, variables)


def _formatted(eval_ctx, translated: str, variables: dict) -> str:
    if eval_ctx.autoescape:
        translated = Markup(translated)
    return translated % variables
