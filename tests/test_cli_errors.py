"""A wrong setting or a service that is down is one or two lines naming the setting, never a
traceback, and never a password; production refuses to start without its secrets; a downgrade
asks first."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from alembic.script import ScriptDirectory

from aftersale.cli import build
from aftersale.core.config import Config, ConfigError, mask_url
from aftersale.store import migrate
from tests.conftest import SMTPRecorder, free_port
from tests.test_cli import env_for

PASSWORD = "hunter2"
ROOT = Path(__file__).resolve().parent.parent
DEAD_POSTGRES = f"postgresql://bob:{PASSWORD}@127.0.0.1:1/x"
DEAD_REDIS = f"redis://:{PASSWORD}@127.0.0.1:1/0"


def assert_short_error(result, *expected: str) -> str:
    """Failed, in at most three lines, with every ``expected`` text, no traceback, no password."""
    output = result.output
    assert result.exit_code not in (0, None), output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert PASSWORD not in output
    assert len(output.strip().splitlines()) <= 3, output
    for text in expected:
        assert text in output, output
    return output


def bare_env(tmp_path, **settings) -> dict:
    """Only what a command needs to get as far as the setting under test."""
    env = {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "REDIS_URL": None,
        "MAIL_URL": None,
        "SMS_URL": None,
        "RULES_DIR": None,
        "SECRET_KEY": None,
        "SHOPIFY_API_SECRET": None,
        "PUBLIC_URL": None,
        "AFTERSALE_ENV": None,
        "LOG_LEVEL": "WARNING",
    }
    env.update(settings)
    return env


# -- mask_url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("smtp://bob:hunter2@mail.example.com:587", "smtp://bob:***@mail.example.com:587"),
        ("redis://:hunter2@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
        ("postgresql://bob:hun/ter2@db/x", "postgresql://bob:***@db/x"),
        ("smtp://bob:hun#ter2@host", "smtp://bob:***@host"),
        (
            "postmark://hunter2@api.postmarkapp.com?stream=outbound",
            "postmark://***@api.postmarkapp.com?stream=outbound",
        ),
        (
            "twilio://AC1:hunter2@api.twilio.com?from=%2B1555",
            "twilio://AC1:***@api.twilio.com?from=%2B1555",
        ),
        (
            "https://hooks.example.com/x?token=hunter2&a=1",
            "https://hooks.example.com/x?token=***&a=1",
        ),
        ("sqlite:////srv/a@b/aftersale.db", "sqlite:////srv/a@b/aftersale.db"),
        ("smtp://bob@host:25", "smtp://bob@host:25"),
        ("", ""),
    ],
)
def test_mask_url_hides_passwords_and_tokens(url, shown):
    assert mask_url(url) == shown


def test_a_config_shows_no_secret_in_its_repr(tmp_path):
    config = Config.from_env(
        {
            "INSTANCE_PATH": str(tmp_path),
            "MAIL_URL": f"smtp://bob:{PASSWORD}@mail.example.com",
            "REDIS_URL": DEAD_REDIS,
            "SECRET_KEY": PASSWORD + "-key",
        }
    )
    assert PASSWORD not in repr(config)
    assert "smtp://bob:***@mail.example.com" in repr(config)


# -- settings checked when the config loads ------------------------------------------


def test_mail_url_with_a_port_that_is_not_a_number(cli_runner, tmp_path):
    env = bare_env(tmp_path, MAIL_URL=f"smtp://bob:{PASSWORD}@host:notaport")
    result = cli_runner.invoke(build(), ["worker", "--burst"], env=env)
    assert_short_error(
        result, "MAIL_URL=smtp://bob:***@host:notaport", "'notaport' is not a number"
    )


def test_mail_url_without_a_host(cli_runner, tmp_path):
    result = cli_runner.invoke(
        build(), ["worker", "--burst"], env=bare_env(tmp_path, MAIL_URL="smtp://")
    )
    assert_short_error(
        result, "MAIL_URL=smtp://", "no host name", "expected smtp://user:password@host"
    )


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("DATABASE_URL", f"mysql://bob:{PASSWORD}@db/x", "scheme 'mysql' is not supported"),
        ("DATABASE_URL", f"postgresql://bob:{PASSWORD}@db:5x/x", "'5x' is not a number"),
        ("REDIS_URL", f"redis://:{PASSWORD}@localhost:sixthree/0", "is not a number"),
        ("REDIS_URL", f"http://:{PASSWORD}@localhost/0", "scheme 'http' is not supported"),
        ("SMS_URL", f"twilio://AC1:{PASSWORD}@api.twilio.com:x?from=%2B1", "'x' is not a number"),
        ("MAIL_URL", f"smtps://bob:{PASSWORD}@:465", "no host name"),
    ],
)
def test_malformed_urls_name_the_setting_with_the_password_masked(
    cli_runner, tmp_path, setting, value, expected
):
    result = cli_runner.invoke(
        build(), ["db", "current"], env=bare_env(tmp_path, **{setting: value})
    )
    assert_short_error(result, f"{setting}=", "***", expected)


# -- services that are down ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["db", "current"], ["actions", "list"], ["shops", "list"], ["web"]],
)
def test_postgres_unreachable(cli_runner, tmp_path, command):
    result = cli_runner.invoke(build(), command, env=bare_env(tmp_path, DATABASE_URL=DEAD_POSTGRES))
    assert_short_error(
        result,
        "DATABASE_URL=postgresql://bob:***@127.0.0.1:1/x",
        "Connection refused",
        "Start the database server, or fix DATABASE_URL",
    )


def test_the_traceback_is_there_with_debug_or_log_level_debug(cli_runner, tmp_path):
    env = bare_env(tmp_path, DATABASE_URL=DEAD_POSTGRES)
    for args, extra in (
        (["--debug", "db", "current"], {}),
        (["db", "current"], {"LOG_LEVEL": "DEBUG"}),
    ):
        result = cli_runner.invoke(build(), args, env={**env, **extra})
        assert result.exit_code == 1
        assert "Traceback" in result.output and "OperationalError" in result.output
        assert "DATABASE_URL=postgresql://bob:***@127.0.0.1:1/x" in result.output


def test_redis_down(cli_runner, config):
    env = {**env_for(config), "REDIS_URL": DEAD_REDIS}
    for command in (["worker", "--burst"], ["scheduler", "--once"]):
        result = cli_runner.invoke(build(), command, env=env)
        assert_short_error(
            result,
            "REDIS_URL=redis://:***@127.0.0.1:1/0",
            "cannot connect to Redis",
            "Start Redis, or fix REDIS_URL",
        )


def test_redis_down_in_a_real_worker_process(config):
    env = {**os.environ, **env_for(config), "REDIS_URL": DEAD_REDIS}
    worker = subprocess.run(
        [sys.executable, "-m", "aftersale", "worker", "--burst"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1
    assert "Traceback" not in worker.stderr and PASSWORD not in worker.stderr
    assert worker.stderr.startswith("Error: REDIS_URL=redis://:***@127.0.0.1:1/0: cannot connect")
    assert len(worker.stderr.strip().splitlines()) == 2, worker.stderr


def test_smtp_server_down_stops_the_worker_at_start(cli_runner, config):
    port = free_port()
    env = {**env_for(config), "MAIL_URL": f"smtp://bob:{PASSWORD}@127.0.0.1:{port}"}
    result = cli_runner.invoke(build(), ["worker", "--burst"], env=env)
    assert_short_error(
        result, f"MAIL_URL=smtp://bob:***@127.0.0.1:{port}", "cannot connect", "fix MAIL_URL"
    )


def test_unmigrated_sqlite_database(cli_runner, tmp_path):
    env = bare_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    result = cli_runner.invoke(build(), ["actions", "list"], env=env)
    assert_short_error(
        result, "DATABASE_URL=sqlite:///", "no such table: actions", "aftersale db upgrade"
    )
    result = cli_runner.invoke(build(), ["actions", "show", "1"], env=env)
    assert_short_error(result, "no such table", "aftersale db upgrade")


def test_a_worker_on_an_unmigrated_database_says_to_migrate(cli_runner, config, tmp_path):
    env = {**env_for(config), "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = cli_runner.invoke(build(), ["worker", "--burst"], env=env)
    assert_short_error(result, "the database has no Aftersale tables", "aftersale db upgrade")


def test_missing_rules_folder(cli_runner, config, tmp_path):
    folder = tmp_path / "no-such-rules"
    env = {**env_for(config), "RULES_DIR": str(folder)}
    for command in (["worker", "--burst"], ["serve", "--no-migrate"]):
        result = cli_runner.invoke(build(), command, env=env)
        assert_short_error(result, f"RULES_DIR={folder}", "does not exist", "point RULES_DIR at")
    result = cli_runner.invoke(build(), ["rules", "check"], env=env)
    assert_short_error(result, str(folder), "rules folder not found", "(RULES_DIR)")


# -- the serve banner ------------------------------------------------------------------


@pytest.fixture
def smtp_with_login():
    def accept(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=True)

    controller = Controller(
        SMTPRecorder(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=accept,
        auth_require_tls=False,
    )
    controller.start()
    yield controller
    controller.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_serve_banner_masks_the_mail_and_database_urls(config, smtp_with_login):
    env = {
        **os.environ,
        **env_for(config),
        "MAIL_URL": f"smtp://bob:{PASSWORD}@127.0.0.1:{smtp_with_login.port}",
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "aftersale", "serve", "--port", str(free_port()), "--no-migrate"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    banner = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            banner.append(line)
            if line.startswith("Try it"):
                break
    finally:
        # the whole process group: serve and the web, worker and scheduler it started
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(40)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(serve.pid):
            time.sleep(0.2)
        if _group_alive(serve.pid):
            os.killpg(serve.pid, signal.SIGKILL)
        serve.stdout.close()
        serve.stderr.close()
    text = "".join(banner)
    assert f"mail:     smtp://bob:***@127.0.0.1:{smtp_with_login.port}" in text, text
    assert PASSWORD not in text


# -- the production guard ------------------------------------------------------------------

PRODUCTION = {
    "AFTERSALE_ENV": "production",
    "SECRET_KEY": "a-long-production-secret-key",
    "SHOPIFY_API_SECRET": "shpss_production",
    "PUBLIC_URL": "https://aftersale.example.com",
}


def test_production_refuses_to_load_without_its_secrets(tmp_path):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "AFTERSALE_ENV": "production"})
    message = str(raised.value)
    assert "SECRET_KEY" in message and "SHOPIFY_API_SECRET" in message
    assert "https:// PUBLIC_URL" in message
    assert not (tmp_path / "dev-secrets.json").exists()  # nothing generated in production


def test_production_names_only_what_is_missing(tmp_path):
    env = {
        "INSTANCE_PATH": str(tmp_path),
        **PRODUCTION,
        "PUBLIC_URL": "http://aftersale.example.com",
    }
    with pytest.raises(ConfigError) as raised:
        Config.from_env(env)
    assert "PUBLIC_URL" in str(raised.value)
    assert "SECRET_KEY" not in str(raised.value) and "SHOPIFY_API_SECRET" not in str(raised.value)
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path), **PRODUCTION})
    assert config.secret_key == PRODUCTION["SECRET_KEY"]
    assert not (tmp_path / "dev-secrets.json").exists()


def test_the_web_app_refuses_to_start_in_production_without_secrets(tmp_path, monkeypatch):
    from aftersale.web import create_app

    for name, value in bare_env(tmp_path, AFTERSALE_ENV="production").items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


@pytest.mark.parametrize(
    "command", [["worker", "--burst"], ["scheduler", "--once"], ["serve"], ["web"]]
)
def test_process_commands_refuse_to_start_in_production_without_secrets(
    cli_runner, tmp_path, command
):
    env = bare_env(tmp_path, AFTERSALE_ENV="production", SECRET_KEY=None)
    result = cli_runner.invoke(build(), command, env=env)
    assert_short_error(
        result, "AFTERSALE_ENV=production", "SECRET_KEY", "SHOPIFY_API_SECRET", "PUBLIC_URL"
    )


# -- db downgrade asks first -------------------------------------------------------------------


@pytest.fixture
def migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    migrate.upgrade(url)
    head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
    return url, head


def test_downgrade_without_a_terminal_refuses_unless_yes(cli_runner, tmp_path, migrated):
    url, head = migrated
    env = bare_env(tmp_path, DATABASE_URL=url)
    result = cli_runner.invoke(build(), ["db", "downgrade", "base"], env=env)
    assert_short_error(result, "removes every Aftersale table", "pass --yes")
    assert migrate.current(url) == head
    result = cli_runner.invoke(build(), ["db", "downgrade", "base", "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert migrate.current(url) is None


def downgrade_on_a_terminal(tmp_path, url: str, answer: bytes) -> str:
    """Run ``aftersale db downgrade base`` with a real terminal as stdin and answer its question."""
    controller, terminal = pty.openpty()
    env = {**os.environ, **{k: v for k, v in bare_env(tmp_path, DATABASE_URL=url).items() if v}}
    for name, value in bare_env(tmp_path).items():
        if value is None:
            env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aftersale", "db", "downgrade", "base"],
        env=env,
        cwd=ROOT,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                seen += os.read(controller, 4096)
        os.write(controller, answer + b"\n")
        assert proc.wait(60) is not None
        while True:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    return seen.decode(errors="replace")


def test_downgrade_on_a_terminal_asks_first(tmp_path, migrated):
    url, head = migrated
    said = downgrade_on_a_terminal(tmp_path, url, b"n")
    assert "removes every Aftersale table" in said and "[y/N]" in said
    assert "Aborted" in said
    assert migrate.current(url) == head
    said = downgrade_on_a_terminal(tmp_path, url, b"y")
    assert migrate.current(url) is None, said
