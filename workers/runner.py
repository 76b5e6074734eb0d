"""The RQ worker process: one SimpleWorker (no fork per job) with this process's Runtime.

Forking per job costs milliseconds and loses the open SMTP connection and
database pool; jobs here are short and isolated by their own transactions,
so the worker runs them in-process. Run more processes to use more cores.
"""

from __future__ import annotations

import signal

from rq import SimpleWorker

from aftersale.core import logs, metrics, sentry
from aftersale.core.config import mask_url
from aftersale.core.errors import DeliveryFailed
from aftersale.core.steps import STEP_TYPES
from aftersale.rules import RulesInvalid
from aftersale.store.queues import ACTIONS, DELIVERIES
from aftersale.workers import shop_access
from aftersale.workers.channels import ChannelUnavailable
from aftersale.workers.heartbeat import Heartbeat
from aftersale.workers.job_runtime import install
from aftersale.workers.leases import LeaseKeeper

log = logs.get_logger("workers.runner")


def make_worker(runtime, *, name: str | None = None) -> SimpleWorker:
    install(runtime)
    queues = [runtime.queue(DELIVERIES), runtime.queue(ACTIONS)]
    return SimpleWorker(queues, connection=runtime.redis, name=name)


#: runtime attribute of a channel -> the setting that configures it
CHANNEL_SETTINGS = {"mailer": ("MAIL_URL", "mail_url"), "sms": ("SMS_URL", "sms_url")}


def check_channels(runtime) -> None:
    """Build the channels the loaded rules use and open each once, so a missing SMS_URL, a
    malformed MAIL_URL or an SMTP server that does not answer stops the worker at start-up
    rather than failing every action later.

    Raises:
        ChannelUnavailable: with the setting to fix.
    """
    used = {step.type for rule in runtime.rules.rules for step in rule.steps} | {"email"}
    for name in sorted(used):
        attribute = STEP_TYPES[name].channel
        if not attribute:
            continue
        channel = getattr(runtime, attribute)  # building it validates its URL setting
        try:
            if channel.open():
                channel.close()
        except (DeliveryFailed, OSError) as exc:
            setting, field = CHANNEL_SETTINGS.get(attribute, (attribute, None))
            value = f"={mask_url(getattr(runtime.config, field))}" if field else ""
            reason = logs.scrub((str(exc).strip().splitlines() or [type(exc).__name__])[0])
            raise ChannelUnavailable(
                f"{setting}{value}: cannot use it ({reason[:200]}); start the server it names,"
                f" or fix {setting}"
            ) from exc


def check_start(runtime) -> None:
    """Everything a worker needs, checked before it takes a job: the database and its schema,
    Redis, the rules folder and the channels its rules use; then a warning for each setting
    that works but is unsafe (a plain-http PUBLIC_URL), after any error so errors come first.

    Raises:
        RulesInvalid, ChannelUnavailable, SchemaNotCurrent, or the driver's connection error.
    """
    runtime.check_services()
    runtime.load_rules_or_fail()  # a bad rules folder stops the worker here, before any job
    check_channels(runtime)
    for warning in runtime.config.warnings():  # production refuses these instead
        log.warning("config.warning", warning=warning)
    shop_access.warn_reinstalls(runtime)  # shops whose grant the rules outgrew: say so once


def reload_on_sighup(runtime) -> None:
    """``kill -HUP <worker>`` loads the rules folder again, all or nothing.

    A folder that fails to load leaves the rules in force untouched (the
    errors are logged with file and line); a good one replaces them between
    jobs' evaluations at once. Check a folder first with ``aftersale rules check``.
    """

    def reload(_signum, _frame):

        try:
            fresh = runtime.reload_rules()
        except RulesInvalid as exc:
            log.error(
                "rules.reload_failed",
                errors=[str(e) for e in exc.errors][:20],
                kept="the rules already in force",
            )
            return
        log.info("rules.reloaded", rules=len(fresh.rules), folder=fresh.folder)

    signal.signal(signal.SIGHUP, reload)


def run_worker(
    runtime, *, burst: bool = False, name: str | None = None, metrics_port: int | None = None
) -> bool:
    """Work until stopped (or, with ``burst``, until the queues are empty).

    Reports errors to Sentry (SENTRY_DSN), serves metrics on ``metrics_port``
    (default WORKER_METRICS_PORT; 0 for none), keeps a heartbeat while it runs and renews
    the leases of the actions it holds (workers/leases.py).
    """
    heartbeat = keeper = None
    try:
        sentry.init(runtime.config, "worker")
        check_start(runtime)
        worker = make_worker(runtime, name=name)
        reload_on_sighup(runtime)
        port = runtime.config.worker_metrics_port if metrics_port is None else metrics_port
        if port:
            metrics.serve(port)
            log.info("metrics.serving", port=port)
        heartbeat = Heartbeat(runtime, "worker", worker.name, runtime.config.heartbeat_seconds)
        heartbeat.start()
        keeper = LeaseKeeper(runtime).start()
        # RQ sets its own logger's level from this: LOG_LEVEL=INFO would bring back a
        # "Job OK" and a "result discarded" line for every job
        return worker.work(
            burst=burst,
            logging_level=logs.library_level(runtime.config.log_level),
            with_scheduler=False,
        )
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        if keeper is not None:
            keeper.stop()
        sentry.flush()
        runtime.close()
