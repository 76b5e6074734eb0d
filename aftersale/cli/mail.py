"""``aftersale mail check-dns``: the SPF, DKIM and DMARC records a sending domain needs.

Nothing is looked up in DNS: the records are derived from this deployment's
settings (MAIL_URL's relay, the DKIM keys of DKIM_KEY_FILE and of the rule
pack's ``dkim:`` settings), so the command works before the domain exists and
prints the same thing wherever it runs. Compare its output with what your DNS
provider shows (``dig +short TXT <name>``).
"""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from urllib.parse import urlsplit

import click

from aftersale.cli import pass_context

#: TXT strings longer than this are split (RFC 1035 3.3.14); DNS providers' forms join them
TXT_CHUNK = 255
#: Postmark signs with its own DKIM key and publishes this SPF include
POSTMARK_SPF = "include:spf.mtasv.net"


@click.group("mail")
def mail_group():
    """Email deliverability."""


@mail_group.command("check-dns")
@click.option("--domain", required=True, help="the domain mail is sent From:, e.g. shop.com")
@click.option("--selector", default=None, help="only the DKIM key with this selector")
@pass_context
def check_dns(ctx, domain, selector):
    """Print the DNS records DOMAIN needs for mail from this deployment (no DNS is queried).

    Exits with status 1 when no DKIM key is configured for DOMAIN (the records are then
    incomplete), except with Postmark, which signs with its own key.
    """
    domain = domain.strip().lower().rstrip(".")
    config = ctx.config
    # deferred import: loading the rules is needed only by this command
    from aftersale.rules import load_rules

    pack = load_rules(config.rules_dir).settings
    every = (pack, *pack.per_shop.values())
    keys = [k for k in _dkim_keys(config, every) if k.domain == domain]
    if selector:
        keys = [k for k in keys if k.selector == selector]
    click.echo(f"DNS records for mail From: @{domain} (derived from settings; DNS not queried)\n")
    _echo_spf(domain, config.mail_url)
    _echo_dkim(domain, selector, keys, config.mail_url)
    _echo_dmarc(domain)
    for sender in sorted({s.sender for s in every if s.sender} or {config.mail_from}):
        sent_from = parseaddr(sender)[1].rpartition("@")[2].lower()
        if sent_from and sent_from != domain and not sent_from.endswith(f".{domain}"):
            click.echo(
                f"Note: mail is sent From {sender!r}; DMARC checks the From domain"
                f" ({sent_from}), so {domain}'s records do not apply to it."
            )
    if not keys and not _is_postmark(config.mail_url):
        raise SystemExit(1)


def _dkim_keys(config, every_settings) -> list:
    """The deployment's key and every shop key of the rule pack, each once."""
    keys = [config.dkim] if config.dkim else []
    for found in every_settings:
        if found.dkim and all(found.dkim.record_name != k.record_name for k in keys):
            keys.append(found.dkim)
    return keys


def _echo_spf(domain: str, mail_url: str) -> None:
    parts = urlsplit(mail_url)
    scheme, host = parts.scheme, (parts.hostname or "")
    click.echo("SPF (which servers may send for the domain)")
    if _is_postmark(mail_url):
        _record(domain, f"v=spf1 {POSTMARK_SPF} ~all")
        click.echo("  MAIL_URL is Postmark, which also passes SPF through its own Return-Path.")
    elif scheme in ("smtp", "smtps") and _public_host(host):
        mechanism = _spf_mechanism(host)
        _record(domain, f"v=spf1 {mechanism} ~all")
        click.echo(
            f"  {mechanism} allows the relay MAIL_URL names. If it is a provider's relay, use"
            " the include: its documentation gives instead."
        )
    else:
        _record(domain, "v=spf1 ip4:<public IPv4 of the server that sends> ~all")
        click.echo(
            f"  MAIL_URL ({scheme}://{host}) is not a public relay, so the sending address"
            " cannot be derived: fill in the public address mail leaves from."
        )
    click.echo("  A domain has one SPF record: merge this into an existing one.\n")


def _echo_dkim(domain: str, selector: str | None, keys: list, mail_url: str) -> None:
    click.echo("DKIM (the public half of the signing key)")
    if _is_postmark(mail_url):
        click.echo("  MAIL_URL is Postmark: publish the DKIM record Postmark shows for the domain.")
    for key in keys:
        _record(key.record_name, key.dns_record)
        click.echo(f"  from {key.key_file}")
    if not keys:
        wanted = f" with selector {selector!r}" if selector else ""
        click.echo(
            f"  No DKIM key is configured for {domain}{wanted}: set DKIM_KEY_FILE, DKIM_SELECTOR"
            f" and DKIM_DOMAIN={domain} (or a shop's dkim: in settings.yaml), then run this"
            " again. See docs/deliverability.md."
        )
    click.echo("")


def _echo_dmarc(domain: str) -> None:
    click.echo("DMARC (what receivers do with mail that fails SPF and DKIM)")
    _record(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}")
    click.echo(
        "  p=none only reports; once the reports show your mail passing, raise it to"
        " p=quarantine. rua= must be a mailbox you read.\n"
    )


def _record(name: str, value: str) -> None:
    click.echo(f"  name:  {name}")
    click.echo("  type:  TXT")
    click.echo(f"  value: {value}")
    if len(value) > TXT_CHUNK:
        chunks = " ".join(f'"{value[i : i + TXT_CHUNK]}"' for i in range(0, len(value), TXT_CHUNK))
        click.echo(f"  zone file: {name}. IN TXT ( {chunks} )")


def _is_postmark(mail_url: str) -> bool:
    return urlsplit(mail_url).scheme.startswith("postmark")


def _public_host(host: str) -> bool:
    if not host or host == "localhost" or host.endswith(".local"):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host


def _spf_mechanism(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"a:{host}"
    return f"ip{address.version}:{address}"


def register(group: click.Group) -> None:
    group.add_command(mail_group)
