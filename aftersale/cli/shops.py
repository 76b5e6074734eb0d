"""``aftersale shops ...`` and ``aftersale webhooks ...``: connecting stores."""

from __future__ import annotations

import click

from aftersale.cli import pass_context


@click.group("shops")
def shops_group():
    """Connect stores and list them."""


@shops_group.command("add-woocommerce")
@click.option("--url", required=True, help="the store's address, e.g. https://shop.example.com")
@click.option("--key", required=True, help="REST API consumer key (ck_...)")
@click.option("--secret", required=True, help="REST API consumer secret (cs_...)")
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="create the store's webhooks right away",
)
@pass_context
def add_woocommerce(ctx, url, key, secret, register):
    """Store a WooCommerce REST API key (encrypted) and create the store's webhooks.

    Make the key in WooCommerce > Settings > Advanced > REST API, with Read/Write
    permissions. Or let the store owner approve Aftersale: aftersale shops
    connect-woocommerce --url ...
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shops import ConnectError, add_woocommerce

    try:
        _, domain = add_woocommerce(ctx.runtime, url, key, secret)
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"shop {domain}: key stored")
    if register:
        _register(ctx.runtime, domain)


@shops_group.command("connect-woocommerce")
@click.option("--url", required=True, help="the store's address, e.g. https://shop.example.com")
@pass_context
def connect_woocommerce(ctx, url):
    """Print the link that lets the store owner approve Aftersale (WooCommerce's key exchange).

    The store then posts a key to PUBLIC_URL/woocommerce/auth-callback, which
    stores it and creates the webhooks; PUBLIC_URL must be reachable over HTTPS.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shops import ConnectError, authorize_url

    try:
        click.echo(authorize_url(ctx.runtime, url))
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from exc


@shops_group.command("list")
@pass_context
def list_shops(ctx):
    """Every connected shop."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from sqlalchemy import select

    from aftersale.store.tables import shops

    with ctx.runtime.engine.connect() as conn:
        rows = conn.execute(select(shops).order_by(shops.c.id)).all()
    if not rows:
        click.echo("no shops yet")
    for row in rows:
        click.echo(f"{row.id:>4}  {row.platform:<12} {row.domain:<40} {row.status}")


@click.group("webhooks")
def webhooks_group():
    """The webhooks Aftersale needs on a store."""


@webhooks_group.command("register")
@click.option("--shop", "domain", required=True, help="the shop's domain, e.g. shop.example.com")
@pass_context
def register_webhooks(ctx, domain):
    """Create the store's webhooks, or re-activate ones WooCommerce disabled. Safe to repeat."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.connectors.woocommerce import shop_domain

    _register(ctx.runtime, shop_domain(domain) or domain)


def _register(runtime, domain: str) -> None:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.shops import ConnectError, delivery_url, register_woocommerce_webhooks

    try:
        done = register_woocommerce_webhooks(runtime, domain)
    except (ConnectError, DeliveryFailed) as exc:
        raise click.ClickException(f"cannot register webhooks for {domain}: {exc}") from exc
    click.echo(f"webhooks of {domain} -> {delivery_url(runtime, domain)}")
    for topic, (what, hook_id) in done.items():
        click.echo(f"  {topic:<18} {what:<12} (webhook {hook_id})")


def register(group: click.Group) -> None:
    group.add_command(shops_group)
    group.add_command(webhooks_group)
