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

    Safe to repeat; run it after changing which events the rules use. The same as
    ``aftersale webhooks register --shop``, which serves WooCommerce stores too.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.cli.shops import _register_shopify
    from aftersale.connectors.shopify.oauth import shop_domain

    shop = shop_domain(domain)
    if shop is None:
        raise click.ClickException(f"{domain!r} is not a NAME.myshopify.com shop")
    _register_shopify(ctx.runtime, shop)


def register(group: click.Group) -> None:
    group.add_command(shopify_group)
