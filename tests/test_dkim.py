"""DKIM: mail sent over SMTP carries a signature that dkimpy verifies over the received bytes.

Each message goes the real way (a planted action, a real RQ worker, composition,
SMTP to the in-process aiosmtpd server); the verifier gets the public key from
the key file itself instead of DNS, exactly the TXT value ``aftersale mail
check-dns`` prints.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aftersale.core.config import Config, ConfigError
from aftersale.rules import RulesInvalid, load_rules
from tests.action_helpers import SHOP, hand_off, plant
from tests.test_spam_score import _stored

SELECTOR = "aftersale"
DOMAIN = "example.com"  # the starter pack's sender is shop@example.com
SHOP_DOMAIN = "brand.example.org"


def write_key(path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    return write_key(tmp_path_factory.mktemp("dkim") / "dkim.pem")


@pytest.fixture
def config(config, key_file):
    """The suite's config with the deployment's DKIM key set, as from DKIM_* variables."""
    return config.replace(dkim_key_file=str(key_file), dkim_selector=SELECTOR, dkim_domain=DOMAIN)


def dns_of(*keys):
    """A dnsfunc for dkimpy answering from the keys' own DNS records, never the network."""
    records = {f"{k.record_name}.".encode(): k.dns_record.encode() for k in keys}

    def lookup(name, timeout=5):
        return records.get(name)

    return lookup


def signature_tags(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    found = re.search(r"^DKIM-Signature: (.*?)\r\n(?=\S)", head, re.MULTILINE | re.DOTALL)
    assert found, head
    tags = [part.strip() for part in re.sub(r"\s+", " ", found.group(1)).split(";")]
    return {k.strip(): v.strip() for k, _, v in (t.partition("=") for t in tags if t)}


def send(runtime, work, smtp_server, template: str, category: str) -> bytes:
    shop_id, event_id, event = _stored(runtime, template, "en")
    (action_id,) = plant(
        runtime,
        shop_id,
        event_id,
        event,
        [("email", {"template": template})],
        rule=f"dkim-{template}",
        category=category,
    )
    hand_off(runtime, [action_id])
    work()
    (envelope,) = smtp_server.handler.envelopes
    return envelope.original_content or envelope.content


def test_marketing_mail_signature_covers_rfc8058_headers(runtime, work, smtp_server):
    raw = send(runtime, work, smtp_server, "review_invite", "marketing")
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert dkim.verify(raw, dnsfunc=dns_of(runtime.config.dkim))
    tags = signature_tags(raw)
    assert (tags["d"], tags["s"]) == (DOMAIN, SELECTOR)
    signed = [h.strip() for h in tags["h"].split(":")]
    for header in ("from", "to", "subject", "date", "message-id"):
        assert header in signed
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed


def test_transactional_mail_is_signed_too(runtime, work, smtp_server):
    raw = send(runtime, work, smtp_server, "order_confirmation", "transactional")
    assert b"List-Unsubscribe" not in raw
    assert dkim.verify(raw, dnsfunc=dns_of(runtime.config.dkim))
    assert "list-unsubscribe" not in signature_tags(raw)["h"]


def test_changed_header_fails_verification(runtime, work, smtp_server):
    """The check is real: a relay rewriting the unsubscribe link breaks the signature."""
    raw = send(runtime, work, smtp_server, "review_invite", "marketing")
    tampered = re.sub(rb"(List-Unsubscribe: <https?://[^/]+/)", rb"\1x", raw, count=1)
    assert tampered != raw
    assert not dkim.verify(tampered, dnsfunc=dns_of(runtime.config.dkim))


def test_shop_with_its_own_domain_signs_with_its_own_key(
    runtime, work, smtp_server, tmp_path, key_file
):
    """``dkim:`` in a shop's settings.yaml entry: that shop's mail is signed d=<its domain>."""
    pack = tmp_path / "rules"
    shutil.copytree(runtime.config.rules_dir, pack)
    write_key(pack / "brand.pem")
    with (pack / "settings.yaml").open("a") as settings:
        settings.write(
            f"\nshops:\n  {SHOP}:\n    sender: Brand <hello@{SHOP_DOMAIN}>\n"
            f"    dkim:\n      domain: {SHOP_DOMAIN}\n      selector: s2026\n"
            "      key_file: brand.pem\n"
        )
    runtime.config = runtime.config.replace(rules_dir=pack)
    runtime.reload_rules()  # as a worker does on SIGHUP
    shop_key = runtime.rules.settings_for(SHOP).dkim
    assert (shop_key.domain, shop_key.selector) == (SHOP_DOMAIN, "s2026")

    raw = send(runtime, work, smtp_server, "review_invite", "marketing")
    assert signature_tags(raw)["d"] == SHOP_DOMAIN
    assert dkim.verify(raw, dnsfunc=dns_of(shop_key))
    assert not dkim.verify(raw, dnsfunc=dns_of(runtime.config.dkim))  # not the deployment key


# -- configuration errors ---------------------------------------------------------------


def dkim_env(key_file, **changes):
    env = {"DKIM_KEY_FILE": str(key_file), "DKIM_SELECTOR": SELECTOR, "DKIM_DOMAIN": DOMAIN}
    return {**env, **changes}


def test_missing_key_file_is_a_config_error_naming_the_setting(tmp_path):
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"DKIM_KEY_FILE=.*nope\.pem: cannot read the DKIM key"):
        Config.from_env(dkim_env(missing), instance_path=tmp_path)


def test_unreadable_key_file_is_a_config_error(tmp_path, key_file):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"DKIM_KEY_FILE=.*garbage\.pem: not a PEM private key"):
        Config.from_env(dkim_env(garbage), instance_path=tmp_path)
    curve = tmp_path / "ec.pem"
    curve.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError, match=r"DKIM_KEY_FILE=.*ec\.pem: not an RSA key"):
        Config.from_env(dkim_env(curve), instance_path=tmp_path)


def test_short_key_and_half_settings_are_config_errors(tmp_path, key_file):
    short = tmp_path / "short.pem"  # cryptography refuses to make one; OpenSSL still does
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
        stdout=short.open("wb"),
        check=True,
    )
    with pytest.raises(ConfigError, match=r"512-bit key is ignored by verifiers"):
        Config.from_env(dkim_env(short), instance_path=tmp_path)
    with pytest.raises(ConfigError, match=r"DKIM_SELECTOR is not set"):
        Config.from_env(dkim_env(key_file, DKIM_SELECTOR=""), instance_path=tmp_path)
    with pytest.raises(ConfigError, match=r"DKIM_DOMAIN='not a domain' is not a domain name"):
        Config.from_env(dkim_env(key_file, DKIM_DOMAIN="not a domain"), instance_path=tmp_path)


def test_bad_shop_key_is_a_rules_error_with_file_and_line(tmp_path, rules_dir):
    pack = tmp_path / "rules"
    shutil.copytree(rules_dir, pack)
    with (pack / "settings.yaml").open("a") as settings:
        settings.write(
            f"\nshops:\n  {SHOP}:\n    dkim:\n      domain: {SHOP_DOMAIN}\n"
            "      selector: s1\n      key_file: missing.pem\n"
        )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(pack)
    (error,) = caught.value.errors
    text = str(error)
    assert text.startswith("rules/settings.yaml:"), text
    assert f"shops.{SHOP}.dkim.key_file=" in text and "cannot read the DKIM key" in text


def test_key_is_never_printed(tmp_path, key_file):
    config = Config.from_env(dkim_env(key_file), instance_path=tmp_path)
    secret = key_file.read_text().splitlines()[1]
    assert secret not in repr(config)
    assert "DkimKey(domain='example.com', selector='aftersale'" in repr(config)


def test_a_key_others_can_read_is_a_start_up_warning(tmp_path, key_file):
    shared = write_key(tmp_path / "shared.pem")
    shared.chmod(0o644)
    config = Config.from_env(
        dkim_env(shared, PUBLIC_URL="https://x.example"), instance_path=tmp_path
    )
    (warning,) = config.warnings()
    assert warning.startswith(f"DKIM_KEY_FILE={shared} can be read by other users")
    shared.chmod(0o600)
    assert config.warnings() == []
