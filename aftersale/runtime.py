"""The shared resources of one process: database engine, Redis, queues, rules, templates.

Each process builds one :class:`Runtime` from its Config, lazily, after any
fork, and every job and request uses it; nothing is opened at import time.
RQ jobs find theirs with :func:`current`, which the worker command installs
and tests install with :func:`install`.
"""

from __future__ import annotations

import threading
import time
from functools import cached_property
from pathlib import Path

from redis import Redis
from rq import Queue

from aftersale.core.clock import SystemClock
from aftersale.core.config import BUILTIN_TEMPLATES_DIR, Config
from aftersale.core.http import make_session
from aftersale.core.links import LinkSigner
from aftersale.core.steps import STEP_TYPES
from aftersale.store.db import make_engine
from aftersale.store.shops import get_shop
from aftersale.workers import job_runtime as jobs

SHOP_CACHE_SECONDS = 30.0


class Runtime:
    def __init__(self, config: Config, clock=None):
        self.config = config
        self.clock = clock or SystemClock()
        self._rules = None
        self._shops: dict[int, tuple[float, object]] = {}
        self._rules_lock = threading.Lock()
        self._http = threading.local()
        self._http_sessions: list = []

    @cached_property
    def engine(self):

        return make_engine(self.config.database_url)

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(
            self.config.redis_url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=30,
        )

    def check_services(self, *, database: bool = True, redis: bool = True) -> None:
        """At process start: the database answers and has the current schema, Redis answers.

        Raises:
            sqlalchemy.exc.OperationalError: the database cannot be reached.
            SchemaNotCurrent: the schema is missing or old (run ``aftersale db upgrade``).
            redis.exceptions.ConnectionError: Redis cannot be reached.
        """
        if database:
            # deferred import: Alembic is needed only by the db commands and start-up checks
            from aftersale.store.migrate import require_current

            require_current(self.engine)
        if redis:
            self.redis.ping()

    def queue(self, purpose: str) -> Queue:
        """``deliveries`` or ``actions``; RQ queues on this runtime's Redis."""
        return Queue(self.config.queue_name(purpose), connection=self.redis)

    @property
    def template_dirs(self) -> list[Path]:
        """Where templates are looked up, first match wins: TEMPLATES_DIR, the rule pack's, built-in."""
        dirs = []
        if self.config.templates_dir:
            dirs.append(Path(self.config.templates_dir))
        pack = Path(self.config.rules_dir) / "templates"
        if pack.is_dir():
            dirs.append(pack)
        dirs.append(BUILTIN_TEMPLATES_DIR)
        return dirs

    @property
    def rules(self):
        """The loaded RuleSet; loaded on first use, replaced only by a successful reload."""
        if self._rules is None:
            with self._rules_lock:
                if self._rules is None:
                    self._rules = self.load_rules()
        return self._rules

    def load_rules_or_fail(self):
        """Load the rules now (at process start) so a bad folder is a start-up error."""
        return self.rules

    def load_rules(self):
        """Rules, and every template they use rendered against sample events (load-time errors)."""
        # deferred import: a web process never renders or sends, so never loads this
        from aftersale.workers.template_check import load_rules_checked

        return load_rules_checked(self.config.rules_dir, self.template_dirs)

    def reload_rules(self):
        """Load the rules folder again; on error keep the rules in force and re-raise."""
        fresh = self.load_rules()
        with self._rules_lock:
            self._rules = fresh
            # templates and their catalogs (checked with the rules just now) are read again
            self.__dict__.pop("renderer", None)
        return fresh

    @cached_property
    def renderer(self):
        # deferred import: a web process never renders or sends, so never loads this
        from aftersale.workers.render import Renderer

        return Renderer(self.template_dirs)

    @cached_property
    def link_signer(self):
        """Signs and checks the review, help and unsubscribe links in messages."""

        return LinkSigner(self.config.secret_keys, self.config.public_url, self.clock)

    @cached_property
    def mailer(self):
        # deferred import: a web process never renders or sends, so never loads this
        from aftersale.workers.channels import mail_channel

        return mail_channel(self.config.mail_url)

    @cached_property
    def sms(self):
        """The SMS channel from SMS_URL; ChannelUnavailable when none is configured."""
        # deferred import: a web process never renders or sends, so never loads this
        from aftersale.workers.channels import sms_channel

        return sms_channel(self.config.sms_url)

    @cached_property
    def webhooks(self):
        """Outbound webhooks, signed with the deployment's webhook secret."""
        # deferred import: a web process never renders or sends, so never loads this
        from aftersale.workers.channels.webhook import WebhookChannel

        return WebhookChannel(self.config.webhook_signing_secret)

    def platform_session(self):
        """This thread's pooled HTTP session for the store platforms' APIs (Shopify, WooCommerce).

        One per thread (a requests session is not thread-safe), kept across jobs so a worker
        reuses its TLS connections to the stores; the API clients are handed it.
        """
        session = getattr(self._http, "session", None)
        if session is None:
            session = self._http.session = make_session()
            self._http_sessions.append(session)
        return session

    def shop(self, conn, shop_id: int):
        """A shop row, cached for SHOP_CACHE_SECONDS: every action reads its shop, and shops
        (settings, credentials) change rarely; a change is seen within that time."""
        now = time.monotonic()
        hit = self._shops.get(shop_id)
        if hit is not None and hit[0] > now:
            return hit[1]

        row = get_shop(conn, shop_id)
        if row is not None:
            self._shops[shop_id] = (now + SHOP_CACHE_SECONDS, row)
        return row

    def forget_shops(self) -> None:
        """Drop cached shop rows, for a change made in this process that must apply at once."""
        self._shops.clear()

    def close(self) -> None:
        for name in {step.channel for step in STEP_TYPES.values() if step.channel}:
            if name in self.__dict__:
                self.__dict__[name].close()
        for session in self._http_sessions:
            session.close()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one this process's jobs use (see aftersale.workers.jobs)."""
    jobs.install(runtime)


def current() -> Runtime:
    return jobs.current()


jobs.set_factory(lambda: Runtime(Config.from_env()))
