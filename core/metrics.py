"""Prometheus metrics: counted where things happen, in every process.

The web process serves ``/metrics`` (webhooks/metrics.py); with several
worker processes, prometheus-client's multiprocess mode adds up their
counters (PROMETHEUS_MULTIPROC_DIR, set by aftersale/web_server.py before
any worker imports this). The web process counts only counters and
histograms, which a dead worker's files keep counting, as they should. A worker or scheduler process serves its
own on a port of its own (WORKER_METRICS_PORT, SCHEDULER_METRICS_PORT).

What the database and Redis hold (queue depth, due actions, the oldest
pending delivery, dead letters, workers alive) is not counted here but read
when scraped (store/monitoring.py), so every scrape says how things are now.
Names and labels are documented in docs/monitoring.md.
"""

from __future__ import annotations

import os

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)

#: seconds: a webhook is answered in milliseconds unless the database is slow
INGEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

WEBHOOKS = Counter(
    "aftersale_webhooks",
    "Webhook deliveries answered, by platform, topic (empty before the signature is checked)"
    " and result (stored, duplicate, ignored, ping, rejected, unavailable)",
    ["platform", "topic", "result"],
)
INGEST_SECONDS = Histogram(
    "aftersale_ingest_seconds",
    "Time from a webhook's arrival to its answer, durable store included",
    ["platform"],
    buckets=INGEST_BUCKETS,
)
EVENTS = Counter("aftersale_events", "Canonical events stored, by kind", ["kind"])
ACTIONS = Counter(
    "aftersale_actions",
    "Action runs by the state they ended in (sent, skipped, deferred, retry, failed, dead,"
    " error) and channel",
    ["state", "channel"],
)
SEND_SECONDS = Histogram(
    "aftersale_send_seconds",
    "Time a channel took to send (mail, SMS, webhook, platform call)",
    ["channel"],
    buckets=SEND_BUCKETS,
)
DEAD_LETTERS = Counter(
    "aftersale_dead_letters", "Actions that used up their attempts, by channel", ["channel"]
)


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR when this process shares metrics with its siblings."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape(*collectors) -> bytes:
    """The text exposition of this process (or, in multiprocess mode, of all web processes)
    plus ``collectors`` (read at this moment)."""
    folder = multiprocess_dir()
    if folder:
        # deferred import: only the web process runs in multiprocess mode
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
    else:
        registry = CollectorRegistry()
        registry.register(_Process())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


class _Process:
    """This process's own metrics (the default registry) inside a scrape's registry."""

    def collect(self):
        yield from REGISTRY.collect()


def serve(port: int, *collectors, addr: str = "0.0.0.0") -> None:
    """Serve this process's metrics (and ``collectors``) on ``port`` from a daemon thread."""
    registry = CollectorRegistry()
    registry.register(_Process())
    for collector in collectors:
        registry.register(collector)
    start_http_server(port, addr=addr, registry=registry)
