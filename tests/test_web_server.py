"""``aftersale web``: granian serving the Flask app, as the Procfile and the image run it.

The real command in a process of its own (two workers, SQLite, the test Redis):
signed webhooks are stored and answered, /metrics adds up what every worker counted,
and SIGTERM stops it cleanly, removing the metrics folder it made. Then the parts
that need no server: settings refused with their name, and forwarded headers
believed only from the proxy's peers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress

import pytest
import requests
from flask import Flask, request
from prometheus_client.parser import text_string_to_metric_families

from aftersale.web_server import WebSettingError, WebSettings, trust_proxy_headers
from tests.faults.test_slow_clients import (
    ROOT,
    _install_demo_shop,
    app_env,
    count_deliveries,
    free_port,
    order_body,
    post_order,
    wait_http,
)

METRICS_TOKEN = "web-server-metrics-token"


def test_the_web_process_stores_webhooks_adds_up_its_workers_and_stops_clean(
    tmp_path, sqlite_template, redis_url
):
    database_url = f"sqlite:///{tmp_path / 'aftersale.db'}"
    (tmp_path / "aftersale.db").write_bytes(sqlite_template.read_bytes())
    _install_demo_shop(database_url)
    scratch = tmp_path / "scratch"  # where the server makes its metrics folder
    scratch.mkdir()
    env = {
        **app_env(database_url, redis_url, tmp_path / "instance"),
        "METRICS_TOKEN": METRICS_TOKEN,
        "TMPDIR": str(scratch),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    command = [sys.executable, "-m", "aftersale", "web", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--threads", "4"]
    with open(tmp_path / "web.log", "ab") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        answers = [post_order(port, order_body(n), timeout=10)[0] for n in range(12)]
        metrics = requests.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        made = list(scratch.glob("aftersale-metrics-*"))
        counted_in = {path.name for folder in made for path in folder.iterdir()}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(30)

    assert answers == [200] * 12
    assert count_deliveries(database_url) == 12
    assert metrics.status_code == 200
    stored = sum(
        sample.value
        for family in text_string_to_metric_families(metrics.text)
        for sample in family.samples
        if sample.name == "aftersale_webhooks_total" and sample.labels.get("result") == "stored"
    )
    assert stored == 12  # whichever of the two workers answered each one
    assert len(made) == 1 and counted_in  # one folder, where the workers counted
    assert code == 0
    assert not made[0].exists()  # the folder the server made goes with it


def test_an_unusable_setting_is_refused_with_its_name(tmp_path):
    with pytest.raises(WebSettingError, match="WEB_CONCURRENCY='two'"):
        WebSettings.from_env({"WEB_CONCURRENCY": "two"})
    with pytest.raises(WebSettingError, match="WEB_THREADS='0'"):
        WebSettings.from_env({"WEB_THREADS": "0"})
    settings = WebSettings.from_env({"PORT": "9001", "WEB_THREADS": "8"}, workers=3)
    assert (settings.port, settings.threads, settings.workers) == (9001, 8, 3)

    env = {**os.environ, "WEB_CONCURRENCY": "zero", "INSTANCE_PATH": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "aftersale", "web"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "WEB_CONCURRENCY='zero' is not a whole number above 0" in run.stderr
    assert "Traceback" not in run.stderr


def _seen_app() -> Flask:
    app = Flask(__name__)

    @app.get("/seen")
    def seen():
        return {"remote": request.remote_addr, "scheme": request.scheme, "host": request.host}

    return app


FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "aftersale.example.net",
}


@pytest.mark.parametrize(
    ("allowed", "peer", "believed"),
    [
        ("127.0.0.1,::1", "127.0.0.1", True),
        ("127.0.0.1,::1", "198.51.100.9", False),
        ("*", "198.51.100.9", True),
        ("", "127.0.0.1", False),
    ],
)
def test_forwarded_headers_are_believed_only_from_the_proxys_peers(allowed, peer, believed):
    app = _seen_app()
    trust_proxy_headers(app, allowed)
    seen = (
        app.test_client()
        .get("/seen", headers=FORWARDED, environ_base={"REMOTE_ADDR": peer})
        .get_json()
    )
    if believed:
        assert seen == {"remote": "203.0.113.7", "scheme": "https", "host": "aftersale.example.net"}
    else:
        assert seen == {"remote": peer, "scheme": "http", "host": "localhost"}


def test_a_sigterm_while_the_workers_load_the_app_stops_it_at_once(tmp_path, redis_url):
    """Each worker loads the app after fork; a SIGTERM then used to be lost in the worker,
    which lived on until the server's 25 s kill (a restart right after a deploy)."""
    database_url = f"sqlite:///{tmp_path / 'aftersale.db'}"
    env = app_env(database_url, redis_url, tmp_path / "instance")
    subprocess.run(
        [sys.executable, "-m", "aftersale", "db", "upgrade"], env=env, cwd=ROOT, check=True
    )
    port = free_port()
    command = [sys.executable, "-m", "aftersale", "web", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2"]
    with open(tmp_path / "web.log", "ab") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_for_port(port)  # listening: the workers are still loading the app
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        took = time.monotonic() - started
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert took < 5, f"stopped after {took:.1f} s"


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")
