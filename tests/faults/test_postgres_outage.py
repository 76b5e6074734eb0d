"""PostgreSQL stopped: the receiver answers 503 so the platform retries, and recovers when it is back.

Runs a private PostgreSQL cluster (initdb as the postgres user) that the test
may stop and start without touching the server other tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from aftersale.core.config import Config
from aftersale.runtime import Runtime, install
from aftersale.store import migrate
from aftersale.store.tables import deliveries
from tests.conftest import SHOPIFY_SECRET, free_port
from tests.helpers import count, install_shop, load_fixture, shopify_headers

pytestmark = pytest.mark.fault


def _pg_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.iterdir(), reverse=True) if root.is_dir() else []
    return versions[0] / "bin" if versions else None


class PrivatePostgres:
    def __init__(self):
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="aftersale-pg-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-w",
            "-l",
            str(self.dir / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if _pg_bin() is None or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("needs PostgreSQL server binaries")
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    yield pg
    pg.destroy()


def test_postgres_down_gives_503_and_nothing_answered_200_is_lost(
    private_postgres, redis_url, smtp_server, rules_dir, tmp_path, clock
):
    migrate.upgrade(private_postgres.url)
    config = Config.from_env(
        {},
        instance_path=tmp_path,
        database_url=private_postgres.url,
        redis_url=redis_url,
        shopify_api_secrets=(SHOPIFY_SECRET,),
        mail_url=smtp_server.url,
        rules_dir=rules_dir,
        secret_key="k",
    )
    runtime = Runtime(config, clock)
    install(runtime)
    from aftersale.web import create_app

    app = create_app(runtime=runtime)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    order = load_fixture("shopify", "orders__create")

    def post(i: int) -> int:
        order["id"] = 7_000_000_000_000 + i
        body = json.dumps(order).encode()
        # a known (cached) shop exercises the writer's failure path, a new one the shop lookup's
        shop = "aftersale-demo.myshopify.com" if i % 2 else f"shop-{i}.myshopify.com"
        install_shop(runtime, shop)  # only installed shops may deliver (none while it is down)
        headers = shopify_headers(
            "orders/create", body, SHOPIFY_SECRET, webhook_id=f"pg-{i}", shop=shop
        )
        return requests.post(
            f"{base}/webhooks/shopify", data=body, headers=headers, timeout=30
        ).status_code

    try:
        before = [post(i) for i in range(20)]
        private_postgres.stop()
        during = [post(i) for i in range(20, 30)]
        private_postgres.start()
        after = [post(i) for i in range(30, 50)]
        retried = [post(i) for i in range(20, 30)]  # the platform retries what got 503

        assert before == [200] * 20
        assert during == [503] * 10
        assert after == [200] * 20 and retried == [200] * 10
        assert app.extensions["aftersale.receiver"].writer.drain()
        assert count(runtime.engine, deliveries) == 50
    finally:
        server.shutdown()
        app.extensions["aftersale.receiver"].writer.stop()
        runtime.close()
        install(None)
