"""The WooCommerce key exchange's ``user_id`` token works once, durably and across processes.

Before, anyone who saw the token (a proxy log, the browser history of the
authorize page) could post it again within its hour with their own key and
replace the store's. Now the first POST spends it in the database: a replay,
to the same process or another one, is refused with 400 and the stored key
stays the first.
"""

from __future__ import annotations

import string
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from aftersale.runtime import Runtime
from aftersale.shops import AUTHORIZE_MAX_AGE, ConnectError, accept_keys, authorize_url
from aftersale.store import migrate
from aftersale.store import shops as shop_store
from aftersale.store import tokens as token_store
from aftersale.store.tables import consumed_tokens
from tests.helpers import count, rows

STORE = "https://shop.example.com"
DOMAIN = "shop.example.com"


def user_id_of(runtime) -> str:
    query = parse_qs(urlsplit(authorize_url(runtime, STORE)).query)
    return query["user_id"][0]


def posted(user_id: str, n: int) -> dict:
    return {
        "key_id": n,
        "user_id": user_id,
        "consumer_key": f"ck_key_{n}",
        "consumer_secret": f"cs_secret_{n}",
        "key_permissions": "read_write",
    }


def stored_key(runtime) -> str:
    with runtime.engine.connect() as conn:
        shop = shop_store.find_shop(conn, "woocommerce", DOMAIN)
    return shop_store.credentials_of(shop, runtime.config.secret_keys)["consumer_key"]


def test_a_replayed_token_is_refused_and_the_first_key_stays(runtime, client):
    token = user_id_of(runtime)
    assert client.post("/woocommerce/auth-callback", json=posted(token, 1)).status_code == 200
    replay = client.post("/woocommerce/auth-callback", json=posted(token, 2))
    assert replay.status_code == 400
    assert b"already used" in replay.data
    assert stored_key(runtime) == "ck_key_1"
    (row,) = rows(runtime.engine, consumed_tokens)
    assert token not in (row.digest, row.purpose)  # only a digest is kept
    assert row.expires_at == row.consumed_at + timedelta(seconds=AUTHORIZE_MAX_AGE)


def respellings(token: str) -> list[str]:
    """The same verified token written differently: itsdangerous decodes the signature's
    base64 leniently (padding, the spare bits of its last character)."""
    head, last = token[:-1], token[-1]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    start = alphabet.index(last) - alphabet.index(last) % 4  # the same but for 2 low bits
    variants = [head + c for c in alphabet[start : start + 4] if c != last]
    return [*variants, token + "=", token + "==", token + "ключ"]


def test_a_respelled_token_is_the_same_token(runtime, client):
    token = user_id_of(runtime)
    assert client.post("/woocommerce/auth-callback", json=posted(token, 1)).status_code == 200
    others = respellings(token)
    assert all(accepted_by_the_signature(runtime, other) for other in others)
    for n, other in enumerate(others, start=2):
        assert client.post("/woocommerce/auth-callback", json=posted(other, n)).status_code == 400
    assert stored_key(runtime) == "ck_key_1"


def accepted_by_the_signature(runtime, token: str) -> bool:
    from aftersale.shops import _serializer

    try:
        _serializer(runtime).loads(token, max_age=AUTHORIZE_MAX_AGE)
    except Exception:
        return False
    return True


def test_a_replay_to_another_process_is_refused_too(runtime, client, config, clock):
    """Another web process: its own runtime, engine and app, the same database."""
    from aftersale.web import create_app

    token = user_id_of(runtime)
    assert client.post("/woocommerce/auth-callback", json=posted(token, 1)).status_code == 200
    other = Runtime(config, clock)
    app = create_app(runtime=other)
    try:
        answer = app.test_client().post("/woocommerce/auth-callback", json=posted(token, 2))
        assert answer.status_code == 400
    finally:
        app.extensions["aftersale.receiver"].writer.stop()
        other.close()
    assert stored_key(runtime) == "ck_key_1"


def test_racing_posts_of_one_token_let_exactly_one_through(runtime, app):
    token = user_id_of(runtime)
    start = threading.Barrier(6)
    answers = {}

    def post(n: int) -> None:
        start.wait()
        answer = app.test_client().post("/woocommerce/auth-callback", json=posted(token, n))
        answers[n] = answer.status_code

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, status in answers.items() if status == 200]
    assert len(winners) == 1 and sorted(answers.values()) == [200] + [400] * 5
    assert stored_key(runtime) == f"ck_key_{winners[0]}"


def test_a_refused_post_does_not_spend_the_token(runtime, client):
    """A malformed POST (no secret) changes nothing, so the owner's real one still works."""
    token = user_id_of(runtime)
    broken = {**posted(token, 1), "consumer_secret": None}
    assert client.post("/woocommerce/auth-callback", json=broken).status_code == 400
    assert count(runtime.engine, consumed_tokens) == 0
    assert client.post("/woocommerce/auth-callback", json=posted(token, 2)).status_code == 200
    assert stored_key(runtime) == "ck_key_2"


@pytest.mark.parametrize("user_id", [None, 1, ["x"], {"url": STORE}, "", "x" * 5000])
def test_a_user_id_that_is_not_our_token_is_refused(runtime, client, user_id):
    answer = client.post("/woocommerce/auth-callback", json=posted(user_id, 1))
    assert answer.status_code == 400
    assert count(runtime.engine, consumed_tokens) == 0


def test_expired_records_are_pruned_and_their_tokens_stay_refused(runtime, clock):
    old = user_id_of(runtime)
    accept_keys(runtime, posted(old, 1))
    clock.advance(timedelta(seconds=AUTHORIZE_MAX_AGE + 1))
    fresh = user_id_of(runtime)
    accept_keys(runtime, posted(fresh, 2))  # prunes the old record on the way
    assert count(runtime.engine, consumed_tokens) == 1
    with pytest.raises(ConnectError, match="invalid or expired"):
        accept_keys(runtime, posted(old, 3))  # its signature is too old anyway
    with runtime.engine.begin() as conn:
        assert token_store.prune(conn, clock.now() + timedelta(hours=2)) == 1
    assert stored_key(runtime) == "ck_key_2"


def test_the_migration_adds_and_removes_the_table(tmp_path):
    from sqlalchemy import create_engine, inspect

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    assert "consumed_tokens" in inspect(engine).get_table_names()
    migrate.downgrade(url, "0004_hardening")
    assert "consumed_tokens" not in inspect(engine).get_table_names()
    migrate.upgrade(url, "0005_consumed_tokens")
    assert "consumed_tokens" in inspect(engine).get_table_names()
    engine.dispose()
