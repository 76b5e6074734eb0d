"""``aftersale shops ...`` and ``aftersale webhooks ...``: connecting stores, on both platforms.

Shopify stores come in through the install link (``/shopify/install``) or, for
a merchant's own store, ``shops add-shopify`` (the client credentials grant);
WooCommerce stores through ``shops add-woocommerce`` or ``connect-woocommerce``.
``shops list|show|remove`` and ``webhooks register|list`` serve both.
"""

from __future__ import annotations

import sys

import click

from aftersale.cli import pass_context


def _console():
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@click.group("shops")
def shops_group():
    """Connect stores, list, show and remove them."""


@shops_group.command("add-shopify")
@click.option("--shop", "domain", required=True, help="the store, e.g. NAME.myshopify.com")
@click.option("--client-id", required=True, help="the app's client id (Dev Dashboard)")
@click.option(
    "--client-secret",
    required=True,
    prompt=True,
    hide_input=True,
    help="the app's client secret (asked for when left out, so it stays out of shell history)",
)
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="create the webhook subscriptions the rules need right away",
)
@pass_context
def add_shopify(ctx, domain, client_id, client_secret, register):
    """Connect your own Shopify store with your app's client credentials.

    For a store of the organization that owns the app (created in the Dev
    Dashboard and installed on the store): Aftersale asks Shopify for a token
    with the app's client id and secret (the client credentials grant), keeps
    them encrypted, and asks again when the token (about 24 hours) runs out.
    Webhooks from this store are verified with this app's secret. Any other
    store installs through PUBLIC_URL/shopify/install?shop=NAME.myshopify.com.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shopify_install import InstallFailed, InstallRefused, add_shopify

    try:
        add_shopify(ctx.runtime, domain, client_id, client_secret)
    except (InstallRefused, InstallFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    shop = domain.strip().lower()
    click.echo(f"shop {shop}: token stored (client credentials grant)")
    if register:
        _register_shopify(ctx.runtime, shop)


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
        _register_woocommerce(ctx.runtime, domain)


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
    """Every connected shop: status, install time, webhook health, last delivery.

    "needs reinstall" means the platform refused to renew the shop's token, or
    the rules now need access the shop has not granted: ``shops show`` gives the link.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    from aftersale.shops import overview

    views = overview(ctx.runtime)
    if not views:
        click.echo("no shops yet")
        return
    table = Table(title=f"{len(views)} shop(s)")
    for column in ("platform", "domain", "status", "installed at", "webhooks", "last delivery"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(
            v.platform,
            v.domain,
            v.status,
            _when(v.installed_at),
            v.webhooks[:60],
            _when(v.last_delivery_at),
        )
    _console().print(table)


@shops_group.command("show")
@click.argument("domain")
@pass_context
def show_shop(ctx, domain):
    """One shop in full (never its credentials), and what to do when it needs reinstalling."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shops import overview

    views = overview(ctx.runtime, domain)
    if not views:
        raise click.ClickException(f"no shop {domain!r}; see: aftersale shops list")
    for v in views:
        lines = [
            ("shop", f"{v.domain} ({v.platform}, id {v.id})"),
            ("status", v.status),
            ("added", _when(v.created_at)),
            ("installed at", _when(v.installed_at)),
            ("webhooks", f"{v.webhooks} (checked {_when(v.webhooks_checked_at)})"),
            ("last delivery", _when(v.last_delivery_at)),
        ]
        if v.reinstall:
            lines += [("why", v.reinstall), ("to fix", v.hint)]
        for label, value in lines:
            click.echo(f"{label + ':':<15}{value}")


@shops_group.command("remove")
@click.argument("domain")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option(
    "--keep-webhooks", is_flag=True, help="do not delete the shop's webhooks on the platform"
)
@pass_context
def remove_shop(ctx, domain, yes, keep_webhooks):
    """Delete the shop and everything stored about it (as Shopify's shop/redact does).

    Irreversible: customers, orders, events, actions, messages. First the shop's
    webhooks that post here are deleted on the platform, so it stops sending what
    would now be refused; if the platform cannot be reached, the data is deleted
    anyway and the output says what to delete there by hand.
    """
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shops import overview, remove_shop

    views = overview(ctx.runtime, domain)
    if not views:
        raise click.ClickException(f"no shop {domain!r}; see: aftersale shops list")
    for v in views:
        question = f"Delete {v.platform} shop {v.domain} and all its data? This cannot be undone"
        if not yes and not click.confirm(question, default=False):
            click.echo(f"{v.domain}: kept")
            continue
        if not keep_webhooks:
            _remove_platform_webhooks(ctx.runtime, v)
        counts = remove_shop(ctx.runtime, v.id)
        rows = sum(counts.values())
        click.echo(f"{v.domain}: removed ({rows} row(s) deleted)")


#: where a store owner deletes webhooks by hand, when Aftersale could not
BY_HAND = {
    "shopify": "uninstall the app in the store's admin (Settings > Apps)",
    "woocommerce": "delete them in WooCommerce > Settings > Advanced > Webhooks",
}


def _remove_platform_webhooks(runtime, view) -> None:
    """Delete the shop's webhooks that post here, saying what was done or what to do."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.shopify_install import InstallRefused, remove_shopify_webhooks
    from aftersale.shops import ConnectError, remove_woocommerce_webhooks

    if view.platform == "shopify" and view.status == "uninstalled":
        click.echo(f"{view.domain}: the app is uninstalled; Shopify removed its webhooks")
        return
    try:
        if view.platform == "shopify":
            removed = remove_shopify_webhooks(runtime, view.domain)
        else:
            removed = remove_woocommerce_webhooks(runtime, view.domain)
    except (InstallRefused, ConnectError, DeliveryFailed) as exc:
        click.echo(
            f"{view.domain}: webhooks not deleted on {view.platform} ({exc}); "
            f"{BY_HAND[view.platform]}",
            err=True,
        )
        return
    click.echo(f"{view.domain}: {len(removed)} webhook(s) deleted on {view.platform}")


@click.group("webhooks")
def webhooks_group():
    """The webhooks Aftersale needs on a store (Shopify or WooCommerce)."""


@webhooks_group.command("register")
@click.option("--shop", "domain", required=True, help="NAME.myshopify.com or shop.example.com")
@pass_context
def register_webhooks(ctx, domain):
    """Create what is missing, repair what points elsewhere or was disabled. Safe to repeat.

    Shopify: the subscriptions the loaded rules need (others of this app are
    removed). WooCommerce: Aftersale's webhooks, re-activated when disabled.
    """
    view = _one_shop(ctx.runtime, domain)
    if view.platform == "shopify":
        _register_shopify(ctx.runtime, view.domain)
    else:
        _register_woocommerce(ctx.runtime, view.domain)


@webhooks_group.command("list")
@click.option("--shop", "domain", required=True, help="NAME.myshopify.com or shop.example.com")
@pass_context
def list_webhooks(ctx, domain):
    """The store's webhooks as the platform lists them, and what is wrong with them."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    from aftersale.core.errors import DeliveryFailed
    from aftersale.shopify_install import InstallRefused, list_shopify_webhooks
    from aftersale.shops import ConnectError, list_woocommerce_webhooks

    view = _one_shop(ctx.runtime, domain)
    table = Table(title=f"webhooks of {view.domain}")
    try:
        if view.platform == "shopify":
            found, problems = list_shopify_webhooks(ctx.runtime, view.domain)
            for column in ("id", "topic", "address"):
                table.add_column(column, overflow="fold")
            for sub in found:
                table.add_row(sub.get("id", ""), sub.get("topic", ""), sub.get("uri", ""))
        else:
            found, problems = list_woocommerce_webhooks(ctx.runtime, view.domain)
            for column in ("id", "topic", "status", "address"):
                table.add_column(column, overflow="fold")
            for hook in found:
                table.add_row(
                    str(hook.get("id", "")),
                    hook.get("topic", ""),
                    hook.get("status", ""),
                    hook.get("delivery_url", ""),
                )
    except (InstallRefused, ConnectError, DeliveryFailed) as exc:
        raise click.ClickException(f"cannot list webhooks of {view.domain}: {exc}") from exc
    _console().print(table)
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        click.echo(f"repair: aftersale webhooks register --shop {view.domain}")
    else:
        click.echo("healthy")


def _one_shop(runtime, domain: str):
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.shops import overview

    views = overview(runtime, domain)
    if not views:
        raise click.ClickException(f"no shop {domain!r}; see: aftersale shops list")
    return views[0]


def _register_shopify(runtime, shop: str) -> None:
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.shopify_install import InstallRefused, delivery_url, register_shopify_webhooks

    try:
        done = register_shopify_webhooks(runtime, shop)
    except (InstallRefused, DeliveryFailed) as exc:
        raise click.ClickException(f"cannot register webhooks for {shop}: {exc}") from exc
    click.echo(f"webhooks of {shop} -> {delivery_url(runtime)}")
    for topic, what, sub_id in done:
        click.echo(f"  {topic:<42} {what:<10} ({sub_id})")


def _register_woocommerce(runtime, domain: str) -> None:
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
