"""gunicorn settings for the ingest bench's baseline: the empty Flask endpoint.

The target (issue 26) is the receiver at half the webhooks a second of an
empty Flask endpoint "under the same gunicorn": these are the settings the web
process ran with under gunicorn before it moved to granian (gthread, 16
threads a worker, the start-up objects frozen out of the collector), so the
baseline is the one the target was set against. The bench passes the bind,
workers and threads on the command line.
"""

import gc

worker_class = "gthread"
threads = 16
worker_connections = 1000
backlog = 2048
timeout = 30
keepalive = 5
errorlog = "-"
loglevel = "warning"


def post_worker_init(_worker):
    """As the web process did: start-up objects out of the collector's way."""
    gc.collect()
    gc.freeze()
