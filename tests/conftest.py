"""Real services for tests: a private Redis server, SQLite and PostgreSQL databases, an SMTP server.

Every test that asks for ``database_url`` runs once on SQLite and once on
PostgreSQL (``--db sqlite|postgresql|both``, or AFTERSALE_TEST_DB). The
PostgreSQL run uses a database of its own, created for the session and
dropped after it, so parallel runs on one server do not meet. Redis is a
private ``redis-server`` on a free port when the binary is installed (so
fault tests may kill it), else AFTERSALE_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import redis as redis_lib
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from aftersale.core.clock import FrozenClock
from aftersale.core.config import Config
from aftersale.runtime import Runtime, install
from aftersale.store import migrate
from aftersale.store.tables import metadata

POSTGRES_ADMIN_URL = os.environ.get(
    "AFTERSALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHOPIFY_SECRET = "test-shopify-secret"
OLD_SHOPIFY_SECRET = "previous-shopify-secret"


def pytest_addoption(parser):
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql", "both"],
        default=os.environ.get("AFTERSALE_TEST_DB", "both"),
        help="database backends to run database tests on",
    )


def pytest_generate_tests(metafunc):
    if "db_backend" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--db")
        backends = ["sqlite", "postgresql"] if choice == "both" else [choice]
        if metafunc.definition.get_closest_marker("postgres_only"):
            backends = [b for b in backends if b == "postgresql"]
        metafunc.parametrize("db_backend", backends, scope="session")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Redis ----------------------------------------------------------------------


class RedisServer:
    """A private redis-server process that tests may stop and start again."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_lib.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis_lib.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if not shutil.which("redis-server"):
        url = os.environ.get("AFTERSALE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
        yield type("External", (), {"url": url, "start": None, "stop": None})()
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    if getattr(redis_server, "proc", True) is None:
        redis_server.start()  # a previous test stopped it
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


# -- databases ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url():
    name = f"aftersale_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("AFTERSALE_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL not available at {POSTGRES_ADMIN_URL}: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(request, db_backend, tmp_path):
    if db_backend == "sqlite":
        path = tmp_path / "aftersale.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


# -- SMTP -----------------------------------------------------------------------


class SMTPRecorder:
    """aiosmtpd handler keeping every accepted message, parsed."""

    def __init__(self):
        self.messages = []
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(
            message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        )
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp_controller():
    handler = SMTPRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def smtp_server(smtp_controller):
    smtp_controller.handler.messages.clear()
    smtp_controller.handler.envelopes.clear()
    smtp_controller.url = f"smtp://127.0.0.1:{smtp_controller.port}"
    return smtp_controller


# -- the application --------------------------------------------------------------


@pytest.fixture
def clock():
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def rules_dir():
    return Path(__file__).resolve().parent.parent / "examples" / "starter"


@pytest.fixture
def config(tmp_path, database_url, redis_url, smtp_server, rules_dir) -> Config:
    return Config.from_env(
        {},
        instance_path=tmp_path / "instance",
        database_url=database_url,
        redis_url=redis_url,
        shopify_api_secrets=(SHOPIFY_SECRET, OLD_SHOPIFY_SECRET),
        mail_url=smtp_server.url,
        rules_dir=rules_dir,
        secret_key="test-secret-key",
        queue_prefix=f"t{uuid.uuid4().hex[:6]}",
        log_format="json",
    )


@pytest.fixture
def runtime(config, clock):
    rt = Runtime(config, clock)
    install(rt)
    yield rt
    app_state = getattr(rt, "_receiver_state", None)
    if app_state is not None:
        app_state.writer.stop()
    rt.close()
    install(None)


@pytest.fixture
def app(runtime):
    from aftersale.web import create_app
    from tests.helpers import install_shop

    application = create_app(runtime=runtime)
    runtime._receiver_state = application.extensions["aftersale.receiver"]
    install_shop(runtime)  # the demo shop installed the app, as before any real webhook
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli_runner():
    return CliRunner()


@pytest.fixture
def work(runtime):
    """Do what the relay and a worker would: hand stored deliveries to RQ, then run a real
    RQ SimpleWorker in burst mode until both queues are empty; and, as the relay does,
    hand over the due actions a worker left in the database because the actions queue
    was behind (store/queues.py, ``hand_off_actions``), until none are left."""
    from aftersale.store.queues import take_deferred
    from aftersale.workers.runner import make_worker
    from aftersale.workers.scheduler import Scheduler

    def run():
        receiver = getattr(runtime, "_receiver_state", None)
        if receiver is not None:
            assert receiver.writer.drain(), "delivery writer did not drain"
        scheduler = Scheduler(runtime)
        scheduler.relay()
        worker = make_worker(runtime)
        worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
        while take_deferred(runtime) and scheduler.dispatch():
            worker.work(burst=True, logging_level="WARNING", with_scheduler=False)
        return worker

    return run


@pytest.fixture
def scheduler(runtime):
    from aftersale.workers.scheduler import Scheduler

    return Scheduler(runtime)
