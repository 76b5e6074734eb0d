"""The mail templates' gettext catalogs (domain ``messages``), as the renderer uses them.

The loader itself is :mod:`aftersale.core.catalogs`, shared with the web pages a
customer opens from a mail (domain ``pages``): the web app may not import the
workers, so what both need lives on the bottom floor. This module keeps the names the
renderer, the completeness check and the CLI have always imported from here.
"""

from __future__ import annotations

from aftersale.core.catalogs import (
    DOMAIN,
    LOCALES_DIR,
    NO_LANGUAGE,
    PAGES_DIR,
    PAGES_DOMAIN,
    SHOP_NAME,
    SHOPS_DIR,
    CatalogProblem,
    Language,
    active,
    catalog_files,
    catalog_locale,
    gettext,
    install_gettext,
    locale_key,
    merged,
    ngettext,
    npgettext,
    pgettext,
    read_catalog,
    shop_folder,
)

__all__ = [
    "DOMAIN",
    "LOCALES_DIR",
    "NO_LANGUAGE",
    "PAGES_DIR",
    "PAGES_DOMAIN",
    "SHOP_NAME",
    "SHOPS_DIR",
    "CatalogProblem",
    "Language",
    "active",
    "catalog_files",
    "catalog_locale",
    "gettext",
    "install_gettext",
    "locale_key",
    "merged",
    "ngettext",
    "npgettext",
    "pgettext",
    "read_catalog",
    "shop_folder",
]
