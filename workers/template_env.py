"""The sandbox every message template renders in, and its file loader.

Sandboxed Jinja2 with strict undefined names, the i18n extension wired to our
gettext catalogs (workers/catalogs.py), our filters, and HTML autoescaped; see
workers/render.py for how templates are found and rendered.
"""

from __future__ import annotations

import time
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from aftersale.workers import catalogs
from aftersale.workers.template_filters import FILTERS
from aftersale.workers.template_recommend import recommendations

#: a template file is looked at on disk again (one ``stat``: changed?) at most this often
RECHECK_SECONDS = 1.0


class RecheckingLoader(FileSystemLoader):
    """Jinja's file loader, asking the disk whether a file changed at most once a second.

    Jinja checks every cached template with a ``stat`` each time it is used:
    eighteen per mail (the template's files, the layout, macros, the lookups of
    which language a template has), a few percent of a worker's time. An
    edited template still shows within a second, without a restart.
    """

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
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
