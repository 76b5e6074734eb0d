"""The RQ worker process: one SimpleWorker (no fork per job) with this process's Runtime.

Forking per job costs milliseconds and loses the open SMTP connection and
database pool; jobs here are short and isolated by their own transactions,
so the worker runs them in-process. Run more processes to use more cores.
"""

from __future__ import annotations

import signal

from rq import SimpleWorker

from aftersale.core import logs
from aftersale.core.steps import STEP_TYPES
from aftersale.rules import RulesInvalid
from aftersale.store.queues import ACTIONS, DELIVERIES
from aftersale.workers.jobs import install

log = logs.get_logger("workers.runner")


def make_worker(runtime, *, name: str | None = None) -> SimpleWorker:
    install(runtime)
    queues = [runtime.queue(DELIVERIES), runtime.queue(ACTIONS)]
    return SimpleWorker(queues, connection=runtime.redis, name=name)


def check_channels(runtime) -> None:
    """Build the channels the loaded rules use, so a missing SMS_URL or a malformed MAIL_URL
    stops the worker at start-up rather than failing every action later.

    Raises:
        ChannelUnavailable: with the setting to fix.
    """
    used = {step.type for rule in runtime.rules.rules for step in rule.steps} | {"email"}
    for name in sorted(used):
        channel = STEP_TYPES[name].channel
        if channel:
            getattr(runtime, channel)  # building it validates its URL setting


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


def run_worker(runtime, *, burst: bool = False, name: str | None = None) -> bool:
    """Work until stopped (or, with ``burst``, until the queues are empty)."""
    worker = make_worker(runtime, name=name)
    runtime.load_rules_or_fail()  # a bad rules folder stops the worker here, before any job
    check_channels(runtime)
    reload_on_sighup(runtime)
    try:
        return worker.work(
            burst=burst, logging_level=runtime.config.log_level, with_scheduler=False
        )
    finally:
        runtime.close()
