"""Bad input: random bodies, headers, encodings and rule files never crash anything.

Every answer of the receiver is 200 (a validly signed JSON object) or a clear
4xx with nothing stored; the rule loader either loads or reports RulesInvalid.
Corpus counts are printed at the end (run with -s to see them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from aftersale.rules import RulesInvalid, load_rules
from aftersale.store.tables import deliveries
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import count

pytestmark = pytest.mark.fault

STATS: Counter = Counter()
latin1 = st.text(
    alphabet=st.characters(max_codepoint=255, blacklist_categories=("Cc",)), max_size=40
)
#: header values as hostile clients send them: control characters, over any column's length
hostile_header = st.text(
    alphabet=st.characters(max_codepoint=255, blacklist_characters="\r\n"), max_size=300
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=40,
)
bodies = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=500).map(lambda t: t.encode("utf-8")),
    st.text(max_size=200).map(lambda t: t.encode("utf-16")),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.integers(min_value=1, max_value=20000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1, max_value=3000).map(
        lambda depth: b'{"a":' * depth + b"1" + b"}" * depth
    ),
)
SIGNATURE_MODES = ("valid", "wrong", "missing", "garbage")


def sign(body: bytes) -> str:
    return base64.b64encode(
        hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    ).decode()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies,
    mode=st.sampled_from(SIGNATURE_MODES),
    topic=st.one_of(st.just("orders/create"), latin1),
    shop=st.one_of(st.just("aftersale-demo.myshopify.com"), latin1),
    webhook_id=st.one_of(st.uuids().map(str), latin1, hostile_header),
    api_version=st.one_of(st.just("2025-10"), hostile_header),
    event_id=st.one_of(st.none(), st.uuids().map(str), hostile_header),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "application/json; charset=utf-16",
        ]
    ),
    drop=st.sets(
        st.sampled_from(
            [
                "X-Shopify-Topic",
                "X-Shopify-Shop-Domain",
                "X-Shopify-API-Version",
                "X-Shopify-Webhook-Id",
            ]
        )
    ),
)
@example(
    body=b"[" * 100000 + b"]" * 100000,
    mode="valid",
    topic="orders/create",
    shop="aftersale-demo.myshopify.com",
    webhook_id="deep",
    api_version="2025-10",
    event_id=None,
    content_type="application/json",
    drop=set(),
)
@example(
    body=b"x" * (1024 * 1024 + 1),
    mode="valid",
    topic="orders/create",
    shop="aftersale-demo.myshopify.com",
    webhook_id="huge",
    api_version="2025-10",
    event_id=None,
    content_type="application/json",
    drop=set(),
)
@example(
    body='{"note": "Ćao 😀 \u0000 \ud7ff"}'.encode(),
    mode="valid",
    topic="orders/create",
    shop="aftersale-demo.myshopify.com",
    webhook_id="unicode",
    api_version="2025-10",
    event_id=None,
    content_type="application/json",
    drop=set(),
)
@example(
    body=b"{}",
    mode="valid",
    topic="orders/create",
    shop="aftersale-demo.myshopify.com",
    webhook_id="long-version",
    api_version="2025-10" + "x" * 40,
    event_id="\x00" * 3,
    content_type="application/json",
    drop=set(),
)
def test_receiver_answers_every_request_clearly(
    client,
    app,
    runtime,
    body,
    mode,
    topic,
    shop,
    webhook_id,
    api_version,
    event_id,
    content_type,
    drop,
):
    """On SQLite and PostgreSQL: never a 5xx (there is no outage here), nothing half-stored."""
    headers = {
        "Content-Type": content_type,
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id,
    }
    if event_id is not None:
        headers["X-Shopify-Event-Id"] = event_id
    if mode == "valid":
        headers["X-Shopify-Hmac-Sha256"] = sign(body)
    elif mode == "wrong":
        headers["X-Shopify-Hmac-Sha256"] = sign(body + b"x")
    elif mode == "garbage":
        headers["X-Shopify-Hmac-Sha256"] = "ü not base64 ✓".encode().decode("latin-1")
    for name in drop:
        headers.pop(name, None)
    before = count(runtime.engine, deliveries)
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    app.extensions["aftersale.receiver"].writer.drain()
    after = count(runtime.engine, deliveries)
    STATS[f"status {response.status_code}"] += 1
    STATS["requests"] += 1
    assert response.status_code in (200, 400, 401, 413), response.data[:200]
    assert response.is_json and response.json.get("status")
    if response.status_code != 200:
        assert after == before, "a rejected request stored something"
        assert response.json["reason"]
    else:
        assert mode == "valid" and not drop
        assert after - before in (0, 1)  # stored, or a duplicate


yaml_texts = st.one_of(
    st.text(max_size=300),
    json_values.map(lambda v: _dump_yaml(v)),
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.one_of(st.text(max_size=12), st.just("r1")),
                "on": st.one_of(st.just("order.created"), latin1),
            },
            optional={
                "category": st.sampled_from(["transactional", "marketing", "x"]),
                "wait": st.one_of(st.just("7d"), latin1, st.integers()),
                "if": json_values,
                "do": st.one_of(json_values, st.just([{"email": "thank_you"}])),
                "once_per": latin1,
                "cancel_on": json_values,
            },
        ),
        max_size=4,
    ).map(lambda v: _dump_yaml(v)),
)


def _dump_yaml(value) -> str:
    stream = io.StringIO()
    YAML(typ="safe").dump(value, stream)
    return stream.getvalue()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=yaml_texts)
@example(text="- !!python/object/apply:os.system ['echo pwned']\n")
@example(text="a: &a [*a]\n")
@example(text="- name: x\n  on: order.created\n  on: order.paid\n")
def test_rule_loader_never_crashes(tmp_path, text):
    folder = tmp_path / "fuzz-rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    try:
        ruleset = load_rules(folder, templates=["thank_you"])
        STATS["rule files loaded"] += 1
        assert all(rule.steps for rule in ruleset.rules)
    except RulesInvalid as exc:
        STATS["rule files rejected"] += 1
        assert exc.errors and all(e.file.endswith("rules.yaml") for e in exc.errors)


def test_print_fuzz_corpus_counts():
    """Runs last in this module: what the fuzzers tried, for the record."""
    print("\nfuzz corpus:", ", ".join(f"{k}: {v}" for k, v in sorted(STATS.items())))
    if STATS:
        assert STATS["requests"] or STATS["rule files rejected"] or STATS["rule files loaded"]
