"""PUBLIC_URL is where every link in a message points: production refuses plain http, and
every other environment says so at start-up (the default http://127.0.0.1:8000 included)."""

from __future__ import annotations

import json

import pytest
from structlog.testing import capture_logs

from aftersale.cli import build
from aftersale.core.config import Config, ConfigError
from aftersale.web import create_app
from aftersale.workers.runner import check_start

PRODUCTION = {
    "AFTERSALE_ENV": "production",
    "SECRET_KEY": "s" * 64,
    "SHOPIFY_API_SECRET": "shpss_test",
}


@pytest.mark.parametrize(
    "url", ["http://shop-links.example.com", "http://127.0.0.1:8000", None, "https://"]
)
def test_production_refuses_a_public_url_that_is_not_https(tmp_path, url):
    env = {**PRODUCTION, **({"PUBLIC_URL": url} if url is not None else {})}
    with pytest.raises(ConfigError, match=r"refuses to start; missing: an https:// PUBLIC_URL"):
        Config.from_env(env, instance_path=tmp_path)


def test_production_accepts_https(tmp_path):
    env = {**PRODUCTION, "PUBLIC_URL": "https://links.example.com/"}
    config = Config.from_env(env, instance_path=tmp_path)
    assert config.public_url == "https://links.example.com"
    assert config.warnings() == []


def test_cli_start_in_production_with_http_fails_with_the_setting_named(
    cli_runner, tmp_path, monkeypatch
):
    """The whole start-up path: the CLI loads the config and stops before doing anything."""
    for name, value in {**PRODUCTION, "PUBLIC_URL": "http://links.example.com"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    result = cli_runner.invoke(build(), ["worker", "--burst"])
    assert result.exit_code != 0
    assert "an https:// PUBLIC_URL (now http://links.example.com)" in result.output


@pytest.mark.parametrize("url", [None, "http://links.example.com"])
def test_development_warns_about_http(tmp_path, url):
    env = {"PUBLIC_URL": url} if url else {}
    config = Config.from_env(env, instance_path=tmp_path)
    (warning,) = config.warnings()
    shown = url or "http://127.0.0.1:8000"
    assert warning.startswith(f"PUBLIC_URL={shown} is not https")


def test_worker_start_logs_the_warning(runtime):
    """What an operator sees: one warning at worker start, with the setting to fix."""
    assert runtime.config.public_url == "http://127.0.0.1:8000"  # the suite's default
    with capture_logs() as logged:
        check_start(runtime)
    (warning,) = [line for line in logged if line["event"] == "config.warning"]
    assert warning["log_level"] == "warning"
    assert warning["warning"].startswith("PUBLIC_URL=http://127.0.0.1:8000 is not https")


def test_web_app_start_logs_the_warning(runtime, capsys):
    """The web app configures logging itself (LOG_FORMAT=json here): one JSON line on stderr."""
    create_app(runtime=runtime)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    (warning,) = [line for line in lines if line.get("event") == "config.warning"]
    assert warning["level"] == "warning"
    assert warning["warning"].startswith("PUBLIC_URL=http://127.0.0.1:8000 is not https")


def test_https_public_url_starts_quietly(runtime):
    runtime.config = runtime.config.replace(public_url="https://links.example.com")
    with capture_logs() as logged:
        check_start(runtime)
    assert not [line for line in logged if line["event"] == "config.warning"]
