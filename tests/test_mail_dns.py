"""``aftersale mail check-dns``: the records printed are the ones the mail actually needs.

The DKIM record printed is checked the strong way: dkimpy verifies a message
signed with the configured key against exactly the TXT value the command
printed. No DNS is queried anywhere (the domains are reserved example names).
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime

import dkim
import pytest

from aftersale.cli import build
from aftersale.core.config import Config
from aftersale.workers.mail import OutgoingEmail
from tests.test_dkim import write_key

DOMAIN = "example.com"
#: MAIL_URL's password: with "-", which base64 (the DKIM key's value) never holds, so the
#: check cannot be tripped by a random key (a bare "pw" was, one run in about ten)
PASSWORD = "not-for-print"


@pytest.fixture
def env(tmp_path):
    key = write_key(tmp_path / "dkim.pem")
    return {
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "MAIL_URL": f"smtp://user:{PASSWORD}@smtp.relay.example.net:587?starttls=1",
        "DKIM_KEY_FILE": str(key),
        "DKIM_SELECTOR": "aftersale",
        "DKIM_DOMAIN": DOMAIN,
    }


def check_dns(cli_runner, env, *args):
    return cli_runner.invoke(build(), ["mail", "check-dns", *args], env=env)


def records(output: str) -> dict[str, str]:
    """name -> value of every record printed."""
    found = re.findall(r"name:\s+(\S+)\n\s+type:\s+TXT\n\s+value:\s+(.+)", output)
    return dict(found)


def test_prints_spf_dkim_and_dmarc(cli_runner, env):
    result = check_dns(cli_runner, env, "--domain", DOMAIN)
    assert result.exit_code == 0, result.output
    printed = records(result.output)
    assert printed[DOMAIN] == "v=spf1 a:smtp.relay.example.net ~all"
    assert printed[f"aftersale._domainkey.{DOMAIN}"].startswith("v=DKIM1; k=rsa; p=MIIB")
    assert printed[f"_dmarc.{DOMAIN}"] == f"v=DMARC1; p=none; rua=mailto:postmaster@{DOMAIN}"
    assert PASSWORD not in result.output  # MAIL_URL's password is never printed
    # the 2048-bit key's value is over 255 characters: the zone-file form splits it
    assert re.search(
        r'zone file: aftersale\._domainkey\.example\.com\. IN TXT \( "v=DKIM1', result.output
    )


def test_printed_dkim_record_verifies_a_signed_message(cli_runner, env, tmp_path):
    printed = records(check_dns(cli_runner, env, "--domain", DOMAIN).output)
    value = printed[f"aftersale._domainkey.{DOMAIN}"].encode()
    config = Config.from_env(env)
    mail = OutgoingEmail(
        sender=f"Shop <shop@{DOMAIN}>",
        to="ana@example.net",
        subject="Order #1042",
        text="Thank you.\n",
        html=None,
        message_id=f"<1@{DOMAIN}>",
        date=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        dkim=config.dkim,
    )

    def dns(name, timeout=5):
        return value if name == f"aftersale._domainkey.{DOMAIN}.".encode() else None

    assert dkim.verify(mail.as_bytes(), dnsfunc=dns)


def test_no_key_for_the_domain_says_what_to_set_and_fails(cli_runner, env):
    result = check_dns(cli_runner, env, "--domain", "other.example")
    assert result.exit_code == 1
    assert "No DKIM key is configured for other.example" in result.output
    assert "DKIM_KEY_FILE" in result.output
    assert "_dmarc.other.example" in records(result.output)
    # the starter pack sends From shop@example.com: other.example's records would not apply
    assert "DMARC checks the From domain (example.com)" in result.output


def test_selector_filters_and_shop_keys_are_listed(cli_runner, env, tmp_path, rules_dir):
    pack = tmp_path / "rules"
    shutil.copytree(rules_dir, pack)
    write_key(pack / "brand.pem")
    with (pack / "settings.yaml").open("a") as settings:
        settings.write(
            "\nshops:\n  brand.myshopify.com:\n    sender: Brand <hi@brand.example>\n"
            "    dkim:\n      domain: brand.example\n      selector: s2026\n"
            "      key_file: brand.pem\n"
        )
    env = {**env, "RULES_DIR": str(pack)}
    result = check_dns(cli_runner, env, "--domain", "brand.example", "--selector", "s2026")
    assert result.exit_code == 0, result.output
    assert "s2026._domainkey.brand.example" in records(result.output)
    wrong = check_dns(cli_runner, env, "--domain", "brand.example", "--selector", "old")
    assert wrong.exit_code == 1 and "with selector 'old'" in wrong.output


def test_postmark_and_local_relays(cli_runner, env):
    postmark = {**env, "MAIL_URL": "postmark://token@api.postmarkapp.com"}
    result = check_dns(cli_runner, postmark, "--domain", DOMAIN)
    assert records(result.output)[DOMAIN] == "v=spf1 include:spf.mtasv.net ~all"
    assert "token" not in result.output
    local = {**env, "MAIL_URL": "smtp://127.0.0.1:25"}
    result = check_dns(cli_runner, local, "--domain", DOMAIN)
    assert "<public IPv4 of the server that sends>" in records(result.output)[DOMAIN]
