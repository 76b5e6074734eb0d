"""The few small pages a customer sees after clicking a link, in the language of the mail.

They are short on purpose: one sentence on what happened or what will
happen, and one button at most. Their HTML is ``templates/_pages/`` and their
words are gettext catalogs (domain ``pages``: ``templates/_locales/pages.pot``
and a ``pages.po`` per language, read by :mod:`aftersale.core.catalogs` exactly
as the mail catalogs are), so a page speaks every language the mails do.

The language is the locale the mail was written in (carried in the link), else
the browser's Accept-Language best match among the languages with a pages
catalog, else English. The preference centre (``preference_page.py``) renders
through the same helpers.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from flask import current_app, has_app_context, has_request_context, request
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from aftersale.core import catalogs, logs
from aftersale.core.config import BUILTIN_TEMPLATES_DIR

log = logs.get_logger("webhooks.link_pages")

#: the language of the msgids, always available
ENGLISH = "en"
#: the pages :func:`page` knows; any other name is answered as ``invalid``
PAGES = ("confirm", "done", "invalid", "expired", "unknown_address")
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


@cache
def environment() -> Environment:
    """The pages' Jinja2 environment: our own files (not a shop's), escaped, gettext from
    the context variable :func:`aftersale.core.catalogs.active` sets per render."""
    env = Environment(
        loader=FileSystemLoader(str(BUILTIN_TEMPLATES_DIR / catalogs.PAGES_DIR)),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
        undefined=StrictUndefined,
    )
    catalogs.install_gettext(env)
    return env


def _folders() -> list[Path]:
    """The template search path, highest first: a string in TEMPLATES_DIR's or the rule
    pack's ``pages.po`` overrides the built-in one, as for the mails."""
    if has_app_context() and "aftersale" in current_app.extensions:
        return current_app.extensions["aftersale"].template_dirs
    return [BUILTIN_TEMPLATES_DIR]


def languages() -> list[str]:
    """English and every language with a built-in pages catalog (complete: the check sees
    to it). An override folder changes strings of these but adds no language, so a page is
    never half in one language and half in English."""
    found = set(catalogs.catalog_files(BUILTIN_TEMPLATES_DIR, catalogs.PAGES_DOMAIN))
    found.discard(ENGLISH)
    return [ENGLISH, *sorted(found)]


def page_locale(asked: str | None, accept_languages=None) -> str:
    """The token's language if we have it (``sr-Latn-RS``, then ``sr-latn``, then ``sr``),
    else the browser's best match, else English."""
    known = languages()
    for candidate in catalogs.locale_candidates(asked):
        if candidate in known:
            return candidate
    if accept_languages:
        return accept_languages.best_match(known) or ENGLISH
    return ENGLISH


def resolve(locale: str | None) -> str:
    """:func:`page_locale` with this request's Accept-Language (none outside a request)."""
    return page_locale(locale, request.accept_languages if has_request_context() else None)


def translations(lang: str) -> catalogs.Language:
    """The pages catalogs of ``lang`` along the search path merged; English (the msgids)
    when a catalog cannot be read, so a broken override never breaks the page."""
    paths = [
        found
        for folder in reversed(_folders())
        if (found := catalogs.catalog_files(folder, catalogs.PAGES_DOMAIN).get(lang))
    ]
    try:
        return catalogs.merged(paths)
    except catalogs.CatalogProblem as exc:
        log.error("pages.catalog_unreadable", locale=lang, error=str(exc))
        return catalogs.NO_LANGUAGE


def render_page(template: str, locale: str | None, **values) -> str:
    """``templates/_pages/<template>`` in the resolved language of ``locale``."""
    lang = resolve(locale)
    with catalogs.active(translations(lang).translations):
        return environment().get_template(template).render(lang=lang, **values)


def page(name: str, locale: str | None, *, action: str | None = None, **values) -> str:
    """One of ``confirm``, ``done``, ``invalid``, ``expired``, ``unknown_address``."""
    values = {"shop": "", "email": "", **values}
    return render_page(
        "link.html", locale, name=name if name in PAGES else "invalid", action=action, **values
    )


def page_titles(name: str) -> set[str]:
    """The title of page ``name`` in every language, as the HTML shows it (escaped)."""
    titles = set()
    for lang in languages():
        found = _TITLE.search(page(name, lang))
        if found:
            titles.add(found.group(1))
    return titles
