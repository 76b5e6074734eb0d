"""gunicorn settings for the web process (Procfile ``web:``, deploy/compose.yaml).

    gunicorn -c python:aftersale.gunicorn_conf 'aftersale.web:create_app()'

These bound what gunicorn can bound. What it cannot: on the gthread worker a
connection gets a thread once its first byte arrives (a silent new connection
holds one for up to 5 s, then waits in the poller for ``keepalive`` seconds),
and from then on reading the headers and the body has no deadline at all.
``timeout`` is the worker's heartbeat, not a request deadline: the gthread
main loop keeps beating while a thread waits on a slow client. So the web
process must only be reachable through a proxy that reads whole requests
first: nginx (deploy/nginx.conf) or a platform router that buffers (Heroku's).
See docs/deploy.md.
"""

import ctypes
import ctypes.util
import gc
import os
import shutil
import tempfile

bind = f"{os.environ.get('WEB_HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))

# Connections a worker holds at once (kept-alive and in progress); past this it stops
# accepting and new connections wait in the listen backlog.
worker_connections = 1000
backlog = 2048

# Worker heartbeat: a worker whose main loop is stuck this long is killed and replaced.
timeout = 30
# On SIGTERM, requests in progress get this long; below the 30 s after which Heroku
# (and `docker stop` with compose's stop_grace_period: 30s) sends SIGKILL.
graceful_timeout = 25
# An idle kept-alive connection is closed after this. Longer than the proxy's own
# upstream keepalive_timeout (4 s in deploy/nginx.conf), so the proxy closes first
# and never sends a request on a connection gunicorn is closing.
keepalive = 5

# Request size limits (gunicorn answers 400 above them). Webhooks and link URLs are
# far below; the proxy's large_client_header_buffers (8 KB) is the same bound.
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# Logs go to stderr; the app writes its own JSON line per webhook (no access log here,
# the proxy has one).
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")

# Metrics: every web worker process counts its own webhooks; prometheus-client's multiprocess
# mode adds them up on /metrics. It needs an empty folder shared by the workers, named before
# any of them imports prometheus_client: set here, in the master, unless the deployment names
# one (PROMETHEUS_MULTIPROC_DIR; it must then be emptied before each start).
_own_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="aftersale-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


#: glibc's mallopt() parameter for the most malloc arenas a process makes
_M_ARENA_MAX = -8


def _limit_malloc_arenas(count: int = 2) -> None:
    """At most ``count`` malloc arenas in each web process (glibc), unless MALLOC_ARENA_MAX
    is set in the environment (glibc then applies that itself).

    glibc gives threads that allocate at once arenas of their own, up to eight per core,
    and memory freed into one is not reused by another: sixteen request threads and the
    delivery writer each left freed memory behind. Two arenas took a web worker's peak
    RSS over the e2e bench from 99.7-99.9 to 98.4 MB, at the same throughput; it is the
    remedy commonly given for threaded servers (MALLOC_ARENA_MAX=2). Set here, before
    any thread exists, so every deployment of ``aftersale web`` gets it. Elsewhere than
    glibc (musl has no mallopt) nothing happens.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(_M_ARENA_MAX, count)
    except (OSError, AttributeError):
        pass


_limit_malloc_arenas()


def post_worker_init(_worker):
    """Freeze what start-up made (modules, the app, SQLAlchemy's tables) out of the collector.

    A webhook parses a 9 KB order into a few hundred objects, so the collector
    runs often, and each full collection walked the ~130,000 start-up objects:
    about 90 ms with every request thread stopped (profiled, docs/performance.md).
    """
    gc.collect()
    gc.freeze()


def child_exit(_server, worker):
    """A web worker that exits leaves its counters counted, its live gauges not."""
    # deferred import: loaded in the master only when a worker exits
    from aftersale.core.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def on_exit(_server):
    """The folder made above goes with the master; one named by the deployment stays."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
