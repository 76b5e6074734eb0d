"""``aftersale shopify ...``: running Aftersale as a Shopify app (docs/shopify.md)."""

from __future__ import annotations

import click

from aftersale.cli import pass_context


@click.group("shopify")
def shopify_group():
    """The Shopify app: its configuration file and the shops' webhooks."""


@shopify_group.command("app-config")
@pass_context
def app_config(ctx):
    """Print shopify.app.toml for PUBLIC_URL, SHOPIFY_API_KEY and the loaded rules' scopes.

    Save it as shopify.app.toml and deploy it with the Shopify CLI
    (``shopify app deploy``); it declares the mandatory compliance webhooks.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.rules.scopes import shopify_needs
    from aftersale.shopify_install import app_config_toml

    config = ctx.config
    client_id = config.shopify_api_key or "YOUR_CLIENT_ID"
    if not config.shopify_api_key:
        click.echo("SHOPIFY_API_KEY is not set: client_id is a placeholder", err=True)
    needs = shopify_needs(ctx.runtime.rules)
    click.echo(app_config_toml(config.public_url, client_id, needs.scopes), nl=False)


@shopify_group.command("register-webhooks")
@click.option("--shop", "domain", required=True, help="the shop, e.g. NAME.myshopify.com")
@pass_context
def register_webhooks(ctx, domain):
    """Create, repair or remove the shop's webhook subscriptions to match the rules.

    Safe to repeat; run it after changing which events the rules use.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.connectors.shopify.oauth import shop_domain
    from aftersale.core.errors import DeliveryFailed
    from aftersale.shopify_install import (
        InstallRefused,
        delivery_url,
        register_shopify_webhooks,
    )

    shop = shop_domain(domain)
    if shop is None:
        raise click.ClickException(f"{domain!r} is not a NAME.myshopify.com shop")
    try:
        done = register_shopify_webhooks(ctx.runtime, shop)
    except (InstallRefused, DeliveryFailed) as exc:
        raise click.ClickException(f"cannot register webhooks for {shop}: {exc}") from exc
    click.echo(f"webhooks of {shop} -> {delivery_url(ctx.runtime)}")
    for topic, what, sub_id in done:
        click.echo(f"  {topic:<42} {what:<10} ({sub_id})")


def register(group: click.Group) -> None:
    group.add_command(shopify_group)
