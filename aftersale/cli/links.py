"""``aftersale links``: rotate a shop's link key (review, help and unsubscribe links)."""

from __future__ import annotations

import click
from sqlalchemy import select, update

from aftersale.cli import pass_context


@click.group("links")
def links_group():
    """Signed links in messages."""


@links_group.command("rotate-key")
@click.option("--shop", "domain", required=True, help="the shop's domain, e.g. x.myshopify.com")
@click.option("--platform", default=None, help="when the same domain exists on two platforms")
@pass_context
def rotate_key(ctx, domain, platform):
    """Sign the shop's new links with a new key. Links of the previous key keep working;
    rotate twice to revoke every link the shop ever sent."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.links import KEY_VERSION_SETTING, key_version
    from aftersale.store.tables import shops

    engine = ctx.runtime.engine
    with engine.begin() as conn:
        query = select(shops).where(shops.c.domain == domain.lower())
        if platform:
            query = query.where(shops.c.platform == platform)
        found = conn.execute(query).all()
        if not found:
            raise click.ClickException(f"no shop {domain!r}")
        if len(found) > 1:
            raise click.ClickException(f"{domain!r} exists on several platforms; pass --platform")
        (shop,) = found
        version = key_version(shop) + 1
        settings = {**(shop.settings or {}), KEY_VERSION_SETTING: version}
        conn.execute(update(shops).where(shops.c.id == shop.id).values(settings=settings))
    click.echo(
        f"{shop.domain}: links are now signed with key version {version}; "
        f"version {version - 1} still works, older links no longer do"
    )


def register(group: click.Group) -> None:
    group.add_command(links_group)
