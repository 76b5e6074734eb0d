"""Translation completeness: what ``aftersale templates check`` and tests/test_catalogs.py report.

A template folder that ships languages (the built-in one) has, per catalog domain, a
``.pot`` (what ``pybabel extract`` finds) and a ``.po`` per language: ``messages`` for
the mail templates, ``pages`` for the web pages in ``_pages/`` (the preference centre
and the link pages). Each domain is complete when:

- the ``.pot`` holds exactly the strings its templates use (extracted again here, with
  the same options as babel.cfg), so no string was added without a catalog update;
- every ``.po`` translates every string of the ``.pot`` (all plural forms), none fuzzy,
  none left over from an old ``.pot``, and each translation keeps the ``%(name)s``
  placeholders Babel's checks require;
- no template (mail or page) prints words outside ``_()``/``{% trans %}`` (text a catalog
  cannot reach).

A folder without a ``.pot`` (a shop's or rule pack's overrides, only the changed strings)
is checked for fuzzy entries and placeholders only.
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import TemplateSyntaxError, nodes

from aftersale.core.catalogs import (
    DOMAIN,
    LOCALES_DIR,
    PAGES_DIR,
    PAGES_DOMAIN,
    SHOPS_DIR,
    catalog_files,
    read_catalog,
)
from aftersale.workers.template_env import make_environment

#: the options babel.cfg gives pybabel: keep the two in step
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trimmed": "true", "silent": "false"}
METHODS = [("**.txt", "jinja2"), ("**.html", "jinja2")]
#: the catalog domains a template folder may ship
DOMAINS = (DOMAIN, PAGES_DOMAIN)
#: folders of a template folder that are not mail templates
NOT_MAIL = (LOCALES_DIR, SHOPS_DIR, PAGES_DIR)
#: what may print outside gettext: markup, numbers, signs, whitespace
TAGS = re.compile(r"<[^>]*>")
NOT_WORDS = re.compile(r"[\W\d_]+")


def extracted(folder: Path, domain: str = DOMAIN) -> set:
    """The msgids of every template of ``domain`` in ``folder`` (the mail templates, or the
    web pages in ``_pages/``), as ``pybabel extract -F babel.cfg`` finds them."""
    found = set()
    pages = domain == PAGES_DOMAIN
    results = extract_from_dir(
        Path(folder) / PAGES_DIR if pages else folder,
        method_map=METHODS,
        options_map={pattern: JINJA_OPTIONS for pattern, _ in METHODS},
        directory_filter=lambda path: (
            Path(path).name not in NOT_MAIL and not Path(path).name.startswith(".")
        ),
    )
    for _file, _line, message, _comments, context in results:
        key = message if isinstance(message, str) else tuple(m for m in message if m)
        found.add((context, key))
    return found


def _ids(catalog) -> set:
    return {(m.context, m.id) for m in catalog if m.id}


def pot_problems(folder: Path, domain: str = DOMAIN) -> list[str]:
    pot = Path(folder) / LOCALES_DIR / f"{domain}.pot"
    with pot.open("rb") as fp:
        known = _ids(read_po(fp))
    used = extracted(Path(folder), domain)
    problems = [f"{pot}: not extracted yet: {_show(m)}" for m in sorted(used - known, key=str)]
    problems += [f"{pot}: no template uses {_show(m)}" for m in sorted(known - used, key=str)]
    return problems


def po_problems(po: Path, expected: set | None) -> list[str]:
    """Fuzzy, untranslated, missing and leftover entries of one ``.po``, and placeholder errors.

    ``expected`` is the ``.pot``'s msgids; None for an overrides catalog (any subset is fine).
    """
    catalog = read_catalog(po)
    problems = []
    if catalog.fuzzy:
        problems.append(f"{po}: the header is marked fuzzy")
    for message in catalog:
        if not message.id:
            continue
        where = f"{po}:{message.lineno}"
        if message.fuzzy:
            problems.append(f"{where}: fuzzy: {_show(message.id)}")
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            problems.append(f"{where}: untranslated: {_show(message.id)}")
    for message, errors in catalog.check():
        for error in errors:
            problems.append(f"{po}:{message.lineno}: {error}: {_show(message.id)}")
    problems += [f"{po}: obsolete entry: {_show(m)}" for m in catalog.obsolete]
    if expected is not None:
        have = _ids(catalog)
        problems += [f"{po}: missing: {_show(m)}" for m in sorted(expected - have, key=str)]
        problems += [f"{po}: not in the .pot: {_show(m)}" for m in sorted(have - expected, key=str)]
    return problems


def literal_text(folder: Path) -> list[str]:
    """``file: words`` for words a template prints outside ``_()``/``{% trans %}``."""
    folder = Path(folder)
    env = make_environment([folder])
    problems = []
    for path in sorted([*folder.rglob("*.txt"), *folder.rglob("*.html")]):
        relative = path.relative_to(folder)
        if relative.parts[0] in (LOCALES_DIR, SHOPS_DIR):
            continue
        try:
            tree = env.parse(path.read_text(), str(relative))
        except TemplateSyntaxError as exc:
            problems.append(f"{relative}:{exc.lineno}: {exc.message}")
            continue
        # the file's fixed text with a mark where a value goes, so a tag split by a value
        # (<a href="{{ url }}">) is still one tag
        static = "\x00".join(data.data for data in tree.find_all(nodes.TemplateData))
        words = NOT_WORDS.sub(" ", unescape(TAGS.sub(" ", _without_head(static)))).split()
        if words:
            problems.append(f"{relative}: not translatable: {' '.join(words)}")
    return problems


def folder_problems(folder: Path) -> list[str]:
    """Everything above for one template folder, both domains, and its shops' override
    catalogs."""
    folder = Path(folder)
    problems: list[str] = []
    shipped = False
    for domain in DOMAINS:
        pot = folder / LOCALES_DIR / f"{domain}.pot"
        expected = None
        if pot.is_file():
            shipped = True
            problems += pot_problems(folder, domain)
            with pot.open("rb") as fp:
                expected = _ids(read_po(fp))
        for po in catalog_files(folder, domain).values():
            problems += po_problems(po, expected)
        shops = folder / SHOPS_DIR
        for shop in sorted(shops.iterdir()) if shops.is_dir() else ():
            for po in catalog_files(shop, domain).values():
                problems += po_problems(po, None)
    if shipped:
        problems += literal_text(folder)
    return problems


def _without_head(text: str) -> str:
    """The layout's <head> (style sheet, meta tags) is markup, not words."""
    return re.sub(r"(?is)<(style|head)\b.*?</\1>", " ", text)


def _show(message) -> str:
    """A msgid for a report line: ``(context, msgid)`` pairs and plural tuples shortened."""
    if isinstance(message, tuple) and len(message) == 2 and (message[0] is None):
        message = message[1]
    text = message if isinstance(message, str) else " / ".join(m for m in message if m)
    return repr(text if len(text) <= 70 else text[:67] + "...")
