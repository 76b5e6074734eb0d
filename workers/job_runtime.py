"""The runtime RQ jobs in this process use: installed by the worker command, or built
once by the factory the app shell registers.

Apart from the jobs themselves (workers/jobs.py) so that importing the runtime, as every
web process does, does not import the whole sending stack (executors, composition, CSS
inlining, channels) that only workers run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_current = None
_factory: Callable[[], object] | None = None
_lock = threading.Lock()


def install(runtime) -> None:
    """Make ``runtime`` the one jobs in this process use (None to forget it)."""
    global _current
    _current = runtime


def set_factory(factory: Callable[[], object]) -> None:
    """How to build a runtime when a job runs before any was installed."""
    global _factory
    _factory = factory


def current():
    """The process's runtime; built by the registered factory the first time if none was installed."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                if _factory is None:
                    raise RuntimeError("no runtime installed: run jobs with `aftersale worker`")
                _current = _factory()
    return _current
