"""Hostile link tokens get the 400 "invalid link" page on every link endpoint, never a 500.

Two kinds of attacker: one who knows nothing and sends garbage (unsigned,
truncated, oversized, a deflate bomb), and one who has SECRET_KEY (a leaked
key, or a bug in what we sign) and signs payloads with the wrong types and
ranges with the project's own per-shop key and serializer. The second is
stronger than any real attacker, so if those tokens are refused cleanly the
claims are checked after the signature, not merely trusted because of it.
"""

from __future__ import annotations

import base64
import json
import zlib
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from aftersale.core.links import KINDS, MAX_ID, ClockSigner, LinkInvalid, shop_key
from aftersale.store import shops as shop_store
from aftersale.store.tables import link_clicks, suppressions
from aftersale.webhooks.link_pages import page_titles
from tests.helpers import count

DOMAIN = "aftersale-demo.myshopify.com"
PREFIX = {kind: prefix for kind, (prefix, _) in KINDS.items()}
INVALID_TITLES = page_titles("invalid")  # in every language, as the page shows it
EXPIRED_TITLES = page_titles("expired")
SHOP = "<the shop's id>"  # replaced by the real id when the payload is signed


@pytest.fixture
def shop_id(runtime):
    with runtime.engine.begin() as conn:
        return shop_store.ensure_shop(conn, "shopify", DOMAIN, runtime.clock.now())


def sign(runtime, kind: str, payload, *, key_shop: int, signer=ClockSigner, **signer_kwargs):
    """What someone holding SECRET_KEY can make: any payload, signed with the shop's link key."""
    serializer = URLSafeTimedSerializer(
        [shop_key(runtime.config.secret_key, key_shop, 1)],
        salt=f"aftersale.link.{kind}",
        signer=signer,
        signer_kwargs=signer_kwargs or {"clock": runtime.clock},
    )
    return serializer.dumps(payload)


def unsigned(payload) -> str:
    """A token of the right shape whose payload says anything, with a made-up signature."""
    raw = json.dumps(payload).encode()
    return f"{base64.urlsafe_b64encode(raw).decode().rstrip('=')}.AAAAAA.{'B' * 27}"


def follow(client, kind: str, token: str):
    """Every endpoint a token of ``kind`` is served at, and what each answered."""
    path = f"/{PREFIX[kind]}/{quote(token, safe='')}"
    answers = [client.get(path, headers={"Accept-Language": "en"})]
    if kind == "unsubscribe":
        answers.append(client.post(path, headers={"Accept-Language": "en"}))
    return answers


def assert_refused(client, runtime, token: str, *, page=INVALID_TITLES, kinds=KINDS):
    for kind in kinds:
        for answer in follow(client, kind, token):
            assert answer.status_code == 400, (kind, token[:80], answer.status_code)
            assert any(title in answer.text for title in page), answer.text[:300]
    assert count(runtime.engine, link_clicks) == 0
    assert count(runtime.engine, suppressions) == 0


def bad_claims(shop: int) -> list:
    """Payloads no link we sign carries: wrong types, out-of-range ids, long or odd texts."""
    ids = [2**64, 2**63, MAX_ID + 1, -1, "1", True, 1.0, None, [1], {"id": 1}, 10**400]
    payloads = [{"s": value, "a": 1} for value in ids]
    payloads += [{"s": shop, "a": value} for value in ids[:-1] if value is not None]
    payloads += [{"s": shop, "a": None}, {"a": 1}, {}]
    texts = [["x"], {"a": 1}, 1.5, True, "", "x" * 256, -1, 2**64]
    payloads += [{"s": shop, "a": 1, key: value} for key in "onpkh" for value in texts]
    locales = [5, "", "x" * 36, "en\nSet-Cookie: x=1", "en us", "../../etc", "sr" * 40]
    payloads += [{"s": shop, "a": 1, "l": value} for value in locales]
    payloads += [{"s": shop, "a": 1, "zz": 1}, {"s": shop, "a": 1, "email": "a@example.com"}]
    payloads += [[shop, 1], "s", shop, None, True, 1.5]
    return payloads


def test_signed_tokens_with_wrong_types_or_ranges_are_refused(client, runtime, shop_id):
    for payload in bad_claims(shop_id):
        s = payload.get("s") if isinstance(payload, dict) else None
        key_shop = s if type(s) is int and 0 <= s <= MAX_ID else shop_id
        for kind in KINDS:
            token = sign(runtime, kind, payload, key_shop=key_shop)
            assert_refused(client, runtime, token, kinds=[kind])
            with pytest.raises(LinkInvalid):
                runtime.link_signer.verify(kind, token)


class FarFutureSigner(ClockSigner):
    """Stamps a time no datetime can hold."""

    def get_timestamp(self) -> int:
        return 2**64 - 1  # the largest itsdangerous can encode


def test_a_signed_token_with_an_impossible_timestamp_is_refused(client, runtime, shop_id):
    for kind in KINDS:
        token = sign(
            runtime,
            kind,
            {"s": shop_id, "a": 1},
            key_shop=shop_id,
            signer=FarFutureSigner,
            clock=runtime.clock,
        )
        assert_refused(client, runtime, token, page=INVALID_TITLES | EXPIRED_TITLES, kinds=[kind])


def test_a_token_for_a_shop_that_does_not_exist_is_refused(client, runtime, shop_id):
    for s in (0, shop_id + 1, MAX_ID):
        assert_refused(client, runtime, sign(runtime, "review", {"s": s, "a": 1}, key_shop=s))


def deflated(raw: bytes) -> str:
    return "." + base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=") + ".AA.BB"


GARBAGE = [
    "x",
    "abc",
    "a.b.c",
    ".",
    "....",
    "..a",
    "%00",
    "ключ",
    "eyJzIjoiNyJ9.AAAA.BBBB",
    "x" * 5000,
    unsigned({"s": 2**64}),
    unsigned({"s": 1, "a": "x"}),
    unsigned({"s": 1, "a": 2**64}),
    unsigned([[[[1]]]]),
    unsigned({"s": 1, "a": 1, "l": "sr"}),
    unsigned("s"),
    "eyJzIjo" + "9" * 5000 + "fQ.AA.BB",  # an int longer than Python will parse
    deflated(b'{"s": 1, "p": "' + b"a" * 1_000_000 + b'"}'),  # a 1 MB deflate bomb
    deflated(b"[" * 100_000 + b"]" * 100_000),
    deflated(b"not json"),
    ".!!!.AA.BB",
]


@pytest.mark.parametrize("token", GARBAGE, ids=range(len(GARBAGE)))
def test_unsigned_garbage_is_refused(client, runtime, shop_id, token):
    assert_refused(client, runtime, token)


def test_a_deflate_bomb_is_not_inflated_before_the_signature_is_checked(runtime):
    token = deflated(b'{"s": 1, "p": "' + b"a" * 1_000_000 + b'"}')
    assert len(token) < 2048
    assert runtime.link_signer.unverified_payload("review", token) is None
    with pytest.raises(LinkInvalid):
        runtime.link_signer.verify("review", token)


def test_a_valid_link_whose_action_is_gone_still_answers_without_an_error(client, runtime, shop_id):
    """Signed by us, well-formed, but the action row is gone: the review and help links
    still take the customer on (the click is kept without an action); unsubscribe says it
    cannot tell which address, as for any link without one."""
    for kind in ("review", "help"):
        token = sign(runtime, kind, {"s": shop_id, "a": MAX_ID}, key_shop=shop_id)
        assert follow(client, kind, token)[0].status_code == 302
    token = sign(runtime, "unsubscribe", {"s": shop_id, "a": MAX_ID}, key_shop=shop_id)
    assert [a.status_code for a in follow(client, "unsubscribe", token)] == [400, 400]
    assert count(runtime.engine, suppressions) == 0


# -- anything at all ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=MAX_ID - 2, max_value=2**65)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)
claim_keys = st.sampled_from(["s", "a", "o", "n", "p", "k", "h", "l"]) | st.text(max_size=3)
payloads = st.one_of(
    json_values,
    st.dictionaries(claim_keys, json_values | st.just(SHOP), max_size=8),
    st.fixed_dictionaries({"s": st.just(SHOP)}).flatmap(
        lambda base: st.dictionaries(claim_keys, json_values, max_size=6).map(
            lambda extra: {**extra, **base}
        )
    ),
)
url_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


def _with_shop(value, shop: int):
    if value == SHOP:
        return shop
    if isinstance(value, dict):
        return {k: _with_shop(v, shop) for k, v in value.items()}
    return value


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    how=st.sampled_from(["text", "unsigned", "signed"]),
    text=url_text,
    payload=payloads,
)
def test_anything_thrown_at_the_link_endpoints_gets_less_than_500(
    client, runtime, shop_id, kind, how, text, payload
):
    payload = _with_shop(payload, shop_id)
    if how == "text":
        token = text
    elif how == "unsigned":
        token = unsigned(payload)
    else:
        token = sign(runtime, kind, payload, key_shop=shop_id)
    for answer in follow(client, kind, token):
        assert answer.status_code < 500, (kind, how, token[:200])
