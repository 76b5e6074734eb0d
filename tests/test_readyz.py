"""/readyz tells a load balancer whether the process can work, and nobody where anything lives.

Anyone gets ``{"status": "ok" | "unavailable"}`` (503 without the database);
only a caller with READYZ_TOKEN gets which check failed; nobody gets a host,
port, database or user name, or an error message.
"""

from __future__ import annotations

import contextlib

import pytest

from aftersale.core.config import Config
from aftersale.runtime import Runtime
from tests.conftest import SHOPIFY_SECRET

TOKEN = "readyz-token-for-tests"
#: every part of the unreachable URL below: none may appear in an answer
SECRET_PARTS = ("127.0.0.1", ":1", "hidden_user", "hidden-password", "hidden_database")
DOWN_DATABASE = "postgresql+psycopg://hidden_user:hidden-password@127.0.0.1:1/hidden_database"
DOWN_REDIS = "redis://127.0.0.1:1/0"


@contextlib.contextmanager
def web(config: Config, clock, **changes):
    """A web app on its own runtime (as a web process would run), closed afterwards."""
    from aftersale.web import create_app

    runtime = Runtime(config.replace(**changes), clock)
    app = create_app(runtime=runtime)
    try:
        yield app.test_client()
    finally:
        app.extensions["aftersale.receiver"].writer.stop()
        runtime.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_tells_nothing_of_where(answer) -> None:
    for part in SECRET_PARTS:
        assert part not in answer.text
    assert "error" not in answer.text.lower()


def test_anyone_gets_only_the_status(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"


def test_the_token_holder_gets_each_check(config, clock):
    with web(config, clock, readyz_token=TOKEN) as client:
        answer = client.get("/readyz", headers=bearer(TOKEN))
        assert answer.status_code == 200
        assert answer.json == {
            "status": "ok",
            "checks": {"database": "ok", "redis": "ok", "worker": "down", "scheduler": "down"},
        }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        bearer(""),
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer ключ"},  # not ASCII: still compared, not a 500
        {"Authorization": "Bearer \u00ff\u00fe"},
    ],
)
def test_a_wrong_or_missing_token_gets_only_the_status(config, clock, headers):
    with web(config, clock, readyz_token=TOKEN) as client:
        answer = client.get("/readyz", headers=headers)
        assert answer.status_code == 200 and answer.json == {"status": "ok"}


def test_without_a_configured_token_nobody_gets_details(client):
    for token in ("", "None", "null"):
        assert client.get("/readyz", headers=bearer(token)).json == {"status": "ok"}


def test_a_database_outage_is_503_without_hosts_or_error_text(config, clock):
    with web(config, clock, database_url=DOWN_DATABASE, readyz_token=TOKEN) as client:
        public = client.get("/readyz")
        assert public.status_code == 503
        assert public.json == {"status": "unavailable"}
        assert_tells_nothing_of_where(public)
        detailed = client.get("/readyz", headers=bearer(TOKEN))
        assert detailed.status_code == 503
        assert detailed.json == {
            "status": "unavailable",
            "checks": {"database": "down", "redis": "ok", "worker": "down", "scheduler": "down"},
        }
        assert_tells_nothing_of_where(detailed)


def test_redis_down_is_reported_to_the_token_holder_but_the_process_stays_ready(config, clock):
    with web(config, clock, redis_url=DOWN_REDIS, readyz_token=TOKEN) as client:
        public = client.get("/readyz")
        assert public.status_code == 200 and public.json == {"status": "ok"}
        detailed = client.get("/readyz", headers=bearer(TOKEN))
        assert detailed.json == {
            "status": "ok",
            "checks": {"database": "ok", "redis": "down", "worker": "down", "scheduler": "down"},
        }
        assert_tells_nothing_of_where(detailed)


def test_readyz_token_comes_from_the_environment(tmp_path):
    config = Config.from_env(
        {"READYZ_TOKEN": TOKEN, "SECRET_KEY": "k", "SHOPIFY_API_SECRET": SHOPIFY_SECRET},
        instance_path=tmp_path,
    )
    assert config.readyz_token == TOKEN
