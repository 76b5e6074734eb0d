"""The sandbox every message template renders in, and its file loader.

Sandboxed Jinja2 with strict undefined names, the i18n extension wired to our
gettext catalogs (workers/catalogs.py), our filters, and HTML autoescaped; see
workers/render.py for how templates are found and rendered.
"""

from __future__ import annotations

import time
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from aftersale.workers import catalogs
from aftersale.workers.template_filters import FILTERS
from aftersale.workers.template_recommend import recommendations

#: a template file is looked at on disk again (one ``stat``: changed?) at most this often
RECHECK_SECONDS = 1.0
#: names remembered as missing; past this many the memory is cleared (a name can carry a
#: customer's locale: ``review_invite/<locale>/subject.txt``)
MAX_MISSING = 1000


class RecheckingLoader(FileSystemLoader):
    """Jinja's file loader, asking the disk whether a file changed at most once a second.

    Jinja checks every cached template with a ``stat`` each time it is used:
    eighteen per mail (the template's files, the layout, macros, the lookups of
    which language a template has), a few percent of a worker's time. A missing
    file Jinja does not remember at all: each mail looked on disk for a
    per-language footer and a per-language copy of its template (four misses,
    a tenth of its render time), so misses are remembered for as long. An edited
    or added template still shows within a second, without a restart.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._missing: dict[str, float] = {}

    def get_source(self, environment, template):
        missed = self._missing.get(template)
        if missed is not None and time.monotonic() - missed < RECHECK_SECONDS:
            raise TemplateNotFound(template)
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except TemplateNotFound:
            if len(self._missing) >= MAX_MISSING:
                self._missing.clear()
            self._missing[template] = time.monotonic()
            raise
        self._missing.pop(template, None)
        checked = time.monotonic()

        def recently_checked_or_unchanged() -> bool:
            nonlocal checked
            now = time.monotonic()
            if now - checked < RECHECK_SECONDS:
                return True
            checked = now
            return uptodate()

        return source, filename, recently_checked_or_unchanged


def make_environment(search: list[Path]) -> SandboxedEnvironment:
    """The sandbox every message renders in; ``{% trans %}`` text is trimmed (one line per
    paragraph in the catalog, as ``trimmed = true`` in babel.cfg extracts it)."""
    env = SandboxedEnvironment(
        loader=RecheckingLoader([str(f) for f in search]),
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        finalize=_blank_none,
    )
    catalogs.install_gettext(env)
    env.filters.update(FILTERS)
    env.globals.update(cross_sell=FILTERS["cross_sell"], replenishable=FILTERS["replenishable"])
    env.globals["recommendations"] = recommendations  # learned from orders (issue 25)
    return env


def _blank_none(value):
    return "" if value is None else value
