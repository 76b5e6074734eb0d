"""Running Aftersale: ``serve`` (everything, for one machine), or ``web``, ``worker``, ``scheduler``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import click

from aftersale.cli import pass_context
from aftersale.core.config import mask_url


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int, help="web worker processes")
@click.option(
    "--workers", "job_workers", default=1, show_default=True, type=int, help="RQ worker processes"
)
@click.option(
    "--no-migrate", is_flag=True, help="do not bring the database schema up to date first"
)
@pass_context
def serve(ctx, host, port, web_workers, job_workers, no_migrate):
    """Run the web receiver, workers and scheduler together until Ctrl-C.

    The embedded defaults need nothing but Redis: a SQLite database and a mail
    outbox folder under ./instance, and the starter rule pack.
    """
    config = ctx.config
    if not no_migrate:
        # deferred import: each command loads only what it uses (all of them: 2.3 s)
        from aftersale.store import migrate

        migrate.upgrade(config.database_url)
    _check_start(ctx)  # a setting or service the processes need is said here, once
    aftersale = [sys.executable, "-m", "aftersale", *(["--debug"] if ctx.debug else [])]
    commands = [
        ("web", _web_command(host, port, web_workers)),
        *[
            (f"worker-{i + 1}", [*aftersale, "worker", *_metrics_port(config, i)])
            for i in range(job_workers)
        ],
        ("scheduler", [*aftersale, "scheduler"]),
    ]
    click.echo(
        f"Aftersale on http://{host}:{port}  (webhooks: POST /webhooks/shopify,"
        " /webhooks/woocommerce/<shop>)"
    )
    click.echo(f"  database: {mask_url(config.database_url)}")
    click.echo(f"  mail:     {mask_url(config.mail_url)}")
    click.echo(f"  rules:    {config.rules_dir}")
    click.echo("Try it: aftersale send-test-webhook   (Ctrl-C stops everything)")
    _supervise(commands)


def _metrics_port(config, index: int) -> list[str]:
    """Worker ``index`` of ``serve`` gets WORKER_METRICS_PORT + index (one port a process)."""
    if not config.worker_metrics_port:
        return []
    return ["--metrics-port", str(config.worker_metrics_port + index)]


def _web_command(host: str, port: int, workers: int) -> list[str]:
    """The web process as the Procfile runs it (``aftersale web``, aftersale/web_server.py);
    only the address and the number of workers come from the command line."""
    return [
        sys.executable,
        "-m",
        "aftersale",
        "web",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def _supervise(commands: list[tuple[str, list[str]]]) -> None:
    """Start the processes; when one exits or on Ctrl-C/SIGTERM, stop them all."""
    stopping = threading.Event()

    def stop(_signum=None, _frame=None):
        stopping.set()

    # before starting any: a signal while they start must stop them, not orphan them
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = {name: subprocess.Popen(cmd) for name, cmd in commands}
    try:
        while not stopping.is_set():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    click.echo(f"{name} exited with status {proc.returncode}; stopping", err=True)
                    stopping.set()
            stopping.wait(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


@click.command()
@click.option("--host", default=None, help="default: $WEB_HOST or 0.0.0.0")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="default: $PORT or 8000")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="worker processes (default: $WEB_CONCURRENCY or 2)",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help="request threads per worker (default: $WEB_THREADS or 16)",
)
@pass_context
def web(ctx, host, port, workers, threads):
    """Run only the web process: webhooks, links, the admin page and /metrics (granian)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale import web_server

    try:
        settings = web_server.WebSettings.from_env(
            host=host, port=port, workers=workers, threads=threads
        )
    except web_server.WebSettingError as exc:
        raise click.ClickException(str(exc)) from None
    # the settings and the database, checked here so a mistake is one line, not a
    # traceback from every worker; Redis may be down: deliveries wait in the database for it
    runtime = _runtime(ctx.config)
    try:
        runtime.check_services(redis=False)
    finally:
        runtime.close()
    click.echo(
        f"web on http://{settings.host}:{settings.port}"
        f" ({settings.workers} processes x {settings.threads} threads)",
        err=True,
    )
    # a fresh interpreter for the server: what this command loaded is not copied into
    # every worker (each loads the app itself, as it would after a restart)
    os.environ.update(
        WEB_HOST=settings.host,
        PORT=str(settings.port),
        WEB_CONCURRENCY=str(settings.workers),
        WEB_THREADS=str(settings.threads),
    )
    os.execv(sys.executable, [sys.executable, "-m", "aftersale.web_server"])


@click.command()
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
@click.option("--name", default=None, help="worker name shown by `rq info`")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="serve Prometheus metrics on this port (default: WORKER_METRICS_PORT; 0: none)",
)
@pass_context
def worker(ctx, burst, name, metrics_port):
    """Run one RQ worker (no fork per job) on the deliveries and actions queues."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers.runner import run_worker

    run_worker(ctx.runtime, burst=burst, name=name, metrics_port=metrics_port)


@click.command()
@click.option("--once", is_flag=True, help="run one tick and exit")
@click.option(
    "--interval", default=1.0, show_default=True, type=float, help="seconds between idle ticks"
)
@pass_context
def scheduler(ctx, once, interval):
    """Run the scheduler: due actions, the delivery outbox sweep, lost-job recovery."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core import metrics, sentry
    from aftersale.store.monitoring import StateCollector
    from aftersale.workers.scheduler import Scheduler, stop_on_signals

    sentry.init(ctx.config, "scheduler")
    ctx.runtime.check_services()  # at start; later outages are ridden out tick by tick
    sched = Scheduler(ctx.runtime)
    if once:
        report = sched.tick()
        click.echo(
            f"released {report.released}, actions enqueued {report.actions_enqueued}, deliveries "
            f"enqueued {report.deliveries_enqueued}, lost jobs re-enqueued {report.lost_jobs_requeued}"
        )
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        sys.exit(1 if report.errors else 0)
    if ctx.config.scheduler_metrics_port:  # the scheduler also serves the system's state
        metrics.serve(ctx.config.scheduler_metrics_port, StateCollector(ctx.runtime))
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        sched.run(stop, interval)
    finally:
        sentry.flush()


def _runtime(config):
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.runtime import Runtime

    return Runtime(config)


def _check_start(ctx) -> None:
    """What the worker checks at start (database, Redis, rules, channels), before starting any."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.workers.runner import check_start

    runtime = _runtime(ctx.config)
    try:
        check_start(runtime)
    finally:
        runtime.close()


def register(group: click.Group) -> None:
    for command in (serve, web, worker, scheduler):
        group.add_command(command)
