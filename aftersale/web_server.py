"""The web process: granian serving the Flask app (Procfile ``web: aftersale web``).

Why granian and not gunicorn: the receiver's own work (signature, parse,
durable store) costs about what gunicorn's Python HTTP handling costs per
request, so under gunicorn a webhook could never be answered at half the rate
of an empty endpoint (docs/performance.md, "Ingest"). granian parses HTTP and
writes answers in Rust and calls the same WSGI app from a pool of Python
threads; measured on the same machine, in the same run, the receiver answered
about twice the webhooks per second at a lower CPU cost per request. The Flask
app is unchanged and stays the one users configure; only the server differs.

What the server does not bound: a request's body is read by the Python thread
as it arrives, so a client that declares a large body and goes silent holds a
thread. The web process must therefore only be reachable through a proxy that
reads whole requests first: nginx (deploy/nginx.conf) or a platform router
that buffers (Heroku's). See docs/deploy.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass

#: glibc's mallopt() parameter for the most malloc arenas a process makes
_M_ARENA_MAX = -8


class WebSettingError(ValueError):
    """A web setting from the environment is unusable; the message names it and the fix."""


@dataclass(frozen=True)
class WebSettings:
    """What the web process is told by its environment or command line."""

    host: str = "0.0.0.0"
    port: int = 8000
    #: worker processes (WEB_CONCURRENCY, the name Heroku and others set)
    workers: int = 2
    #: Python threads per worker that run requests; a request waiting for the inbox's group
    #: commit holds one, so more threads make bigger batches (16: docs/performance.md)
    threads: int = 16
    #: connections waiting to be accepted
    backlog: int = 2048
    #: a connection must send a request's headers within this; also how long an idle
    #: kept-alive connection stays open, longer than the proxy's own upstream
    #: keepalive_timeout (4 s in deploy/nginx.conf), so the proxy closes first
    header_timeout_ms: int = 5_000
    #: on SIGTERM, requests in progress get this long; below the 30 s after which Heroku
    #: (and `docker stop` with compose's stop_grace_period: 30s) sends SIGKILL
    graceful_seconds: int = 25

    @classmethod
    def from_env(cls, environ=None, **overrides) -> WebSettings:
        """PORT, WEB_HOST, WEB_CONCURRENCY and WEB_THREADS, then ``overrides`` (not None)."""
        environ = os.environ if environ is None else environ
        values = {
            "host": environ.get("WEB_HOST") or cls.host,
            "port": _positive(environ, "PORT", cls.port),
            "workers": _positive(environ, "WEB_CONCURRENCY", cls.workers),
            "threads": _positive(environ, "WEB_THREADS", cls.threads),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _positive(environ, name: str, default: int) -> int:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise WebSettingError(
            f"{name}={raw!r} is not a whole number above 0; set it to one"
            f" (or leave it unset for {default})"
        )
    return value


def serve_app():
    """The app factory each granian worker calls: the whole app, then its objects frozen.

    A webhook parses a 9 KB order into a few hundred objects, so the collector
    runs often, and each full collection walked the ~130,000 start-up objects:
    about 90 ms with every request thread stopped (profiled, docs/performance.md).
    """
    # Until granian installs the worker's own handlers (after this returns), the worker
    # holds the server process's, copied by fork, whose flag nothing reads in a worker:
    # a SIGTERM while the app loads was lost and the worker lived until the 25 s kill.
    # With the default action it ends at once; it has no request to finish yet.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # deferred import: the server process itself needs none of the app
    from aftersale.web import create_app

    app = create_app()
    trust_proxy_headers(app, os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))
    gc.collect()
    gc.freeze()
    return app


class _ExpectedThreadCount(logging.Filter):
    """Drops granian's start-up advice against more Python threads than 2 x cores + 1.

    The advice is for apps whose requests keep the interpreter busy; here a
    request mostly waits for the inbox's shared commit, with the GIL released,
    and fewer threads made smaller batches and fewer webhooks a second.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Python threads" not in record.getMessage()


#: granian's own lines go through the root logger, so they come out as the app's JSON lines
_SERVER_LOGS = {
    "filters": {"expected_threads": {"()": _ExpectedThreadCount}},
    "loggers": {
        "_granian": {"handlers": [], "propagate": True, "filters": ["expected_threads"]},
        "granian.access": {"handlers": [], "propagate": True},
    },
}


def trust_proxy_headers(app, allowed: str) -> None:
    """Take X-Forwarded-For/-Proto/-Host from the proxy's peers in ``allowed`` (or ``*``).

    The proxy terminates TLS, so without this every request looks like plain
    HTTP from the proxy's address: the admin's login limit would count one
    client, and Flask-WTF would skip its HTTPS referrer check. Same setting and
    default as gunicorn's (FORWARDED_ALLOW_IPS, loopback only); one hop, as
    deploy/nginx.conf sets the headers rather than appending to a client's.
    """
    # deferred import: only the served app needs it
    from werkzeug.middleware.proxy_fix import ProxyFix

    peers = {peer.strip() for peer in allowed.split(",") if peer.strip()}
    if not peers:
        return
    plain = app.wsgi_app
    fixed = ProxyFix(plain, x_for=1, x_proto=1, x_host=1)
    if "*" in peers:
        app.wsgi_app = fixed
        return

    def from_trusted_peers(environ, start_response):
        if environ.get("REMOTE_ADDR") in peers:
            return fixed(environ, start_response)
        return plain(environ, start_response)

    app.wsgi_app = from_trusted_peers


def build_server(settings: WebSettings):
    """The granian server for ``settings``, not yet started."""
    # deferred import: only the web process loads the server
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    return Granian(
        "aftersale.web_server:serve_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.threads,
        backlog=settings.backlog,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=settings.header_timeout_ms),
        websockets=False,
        # the app writes its own JSON line per webhook; the proxy keeps the access log
        log_access=False,
        log_level=LogLevels.warning,
        log_dictconfig=_SERVER_LOGS,
        respawn_failed_workers=True,
        workers_kill_timeout=settings.graceful_seconds,
    )


def run(settings: WebSettings) -> None:
    """Serve until SIGINT/SIGTERM; what the process set up for its workers goes with it."""
    _limit_malloc_arenas()
    _tune_server_allocator()
    own_metrics_dir = _share_metrics()
    try:
        build_server(settings).serve()
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _share_metrics() -> str | None:
    """A folder where every worker process counts its webhooks; /metrics adds them up.

    prometheus-client's multiprocess mode needs it named before any worker
    imports prometheus_client. One named by the deployment (PROMETHEUS_MULTIPROC_DIR,
    emptied before each start) stays; one made here is removed on exit.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    folder = tempfile.mkdtemp(prefix="aftersale-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


#: granian's own allocator (jemalloc, built in with the ``_rjem_`` prefix): one arena, no
#: per-thread caches, freed pages returned at once
SERVER_ALLOCATOR = "narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0"


def _tune_server_allocator() -> None:
    """jemalloc inside granian keeps freed pages for 10 s and an arena per core by default:
    5 MB of a web worker's peak RSS over the ingest bench, at no measurable gain in
    webhooks a second (docs/performance.md). Read when granian is first loaded, so set
    before that; a deployment's own _RJEM_MALLOC_CONF wins.
    """
    os.environ.setdefault("_RJEM_MALLOC_CONF", SERVER_ALLOCATOR)


def _limit_malloc_arenas(count: int = 2) -> None:
    """At most ``count`` malloc arenas in each web process (glibc), unless MALLOC_ARENA_MAX
    is set in the environment (glibc then applies that itself).

    glibc gives threads that allocate at once arenas of their own, up to eight per core,
    and memory freed into one is not reused by another: the request threads and the
    delivery writer each left freed memory behind. Two arenas took a web worker's peak
    RSS over the e2e bench from 99.7-99.9 to 98.4 MB, at the same throughput; it is the
    remedy commonly given for threaded servers (MALLOC_ARENA_MAX=2). Set before any
    thread exists and before the workers are forked, which inherit it. Elsewhere than
    glibc (musl has no mallopt) nothing happens.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(_M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    # ``aftersale web`` checks the settings and the database, then execs this: the server
    # process starts with nothing of the app loaded, and each worker loads its own.
    run(WebSettings.from_env())
