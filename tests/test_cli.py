"""The command line, run the way a user runs it (click's runner or a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from alembic.script import ScriptDirectory
from werkzeug.serving import make_server

from aftersale.cli import build
from aftersale.store import migrate
from aftersale.store.tables import actions, deliveries
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count, rows


def env_for(config) -> dict:
    return {
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "SHOPIFY_API_SECRET": SHOPIFY_SECRET,
        "MAIL_URL": config.mail_url,
        "RULES_DIR": str(config.rules_dir),
        "INSTANCE_PATH": str(config.instance_path),
        "SECRET_KEY": "k",
        "QUEUE_PREFIX": config.queue_prefix,
        "LOG_LEVEL": "WARNING",
    }


def test_db_upgrade_creates_the_schema(cli_runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = cli_runner.invoke(
        build(), ["db", "upgrade"], env={"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
    assert f"database at revision {head}" in result.output
    current = cli_runner.invoke(
        build(), ["db", "current"], env={"DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)}
    )
    assert current.output.strip() == head


def test_rules_check_prints_the_rules_and_exits_0(cli_runner, rules_dir, tmp_path):
    result = cli_runner.invoke(
        build(), ["rules", "check", str(rules_dir)], env={"INSTANCE_PATH": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    for name in ("thank-you", "shipping-update", "review-invite"):
        assert name in result.output
    assert "OK" in result.output


def test_rules_check_reports_errors_with_positions_and_exits_1(cli_runner, tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "- name: x\n  on: order.creatd\n  category: transactional\n  do: [{email: thank_you}]\n"
    )
    result = cli_runner.invoke(
        build(), ["rules", "check", str(folder)], env={"INSTANCE_PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert (
        "rules/bad.yaml:2:3: rule 'x', on: unknown event kind 'order.creatd' (did you mean 'order.created'?)"
        in result.output
    )
    assert "1 error(s)" in result.output


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_send_test_webhook_reaches_the_outbox(
    cli_runner, live_server, config, runtime, work, smtp_server
):
    env = env_for(config)
    result = cli_runner.invoke(
        build(), ["send-test-webhook", "--url", live_server, "--wait", "0"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "-> 200" in result.output
    work()
    assert count(runtime.engine, deliveries) == 1
    (action,) = rows(runtime.engine, actions)
    assert action.status == "sent"
    (message,) = smtp_server.handler.messages
    assert message["To"] == "ana.petrovic@example.com"
    # a second run is a new order, so the once-per-order rule fires again
    cli_runner.invoke(build(), ["send-test-webhook", "--url", live_server, "--wait", "0"], env=env)
    work()
    assert len(smtp_server.handler.messages) == 2


def test_send_test_webhook_without_a_server_says_so(cli_runner, config):
    env = env_for(config)
    result = cli_runner.invoke(
        build(), ["send-test-webhook", "--url", "http://127.0.0.1:9", "--wait", "0"], env=env
    )
    assert result.exit_code == 1
    assert "is `aftersale serve` running?" in result.output


def test_worker_and_scheduler_commands_run_as_processes(config, tmp_path):
    env = {**os.environ, **env_for(config)}
    scheduler = subprocess.run(
        [sys.executable, "-m", "aftersale", "scheduler", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scheduler.returncode == 0, scheduler.stderr
    assert "actions enqueued 0" in scheduler.stdout
    worker = subprocess.run(
        [sys.executable, "-m", "aftersale", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr


def test_worker_refuses_to_start_with_bad_rules(config, tmp_path):
    folder = tmp_path / "bad-rules"
    folder.mkdir()
    (folder / "x.yaml").write_text("- name: x\n")
    env = {**os.environ, **env_for(config), "RULES_DIR": str(folder)}
    worker = subprocess.run(
        [sys.executable, "-m", "aftersale", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode != 0
    assert "'on' is required" in worker.stderr


def test_a_follow_up_sample_is_about_the_order_sent_last(
    cli_runner, live_server, config, runtime, work, smtp_server
):
    """`--topic fulfillments/create` after the order: same order number, same language."""
    env = env_for(config)
    for topic in ("orders/create", "fulfillments/create"):
        result = cli_runner.invoke(
            build(),
            ["send-test-webhook", "--url", live_server, "--wait", "0", "--topic", topic],
            env=env,
        )
        assert result.exit_code == 0, result.output
        work()
    assert "about order #" in result.output
    thank_you, shipping = smtp_server.handler.messages
    number = thank_you["Subject"].split("#")[1].split()[0]
    assert (
        f"#{number}" in shipping["Subject"]
        or f"#{number}" in shipping.get_body(("plain",)).get_content()
    )
    assert thank_you["Content-Language"] == shipping["Content-Language"]
