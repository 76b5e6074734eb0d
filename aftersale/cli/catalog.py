"""``aftersale catalog sync``, ``aftersale recommend`` and ``aftersale insights``.

The catalog sync pages through the platform's products (workers/shop_catalog.py).
``recommend`` prints what an order's mail would suggest and why: the pair
counts, confidence and lift, or the fallback used. ``insights`` prints the
shop's strongest product pairs and its repurchase cycles as tables; with
``--refresh`` it recounts the model first, with a progress display on a
terminal (a large store's recount takes seconds).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import click

from aftersale.cli import pass_context
from aftersale.cli.sync import _console, _shop_id


@click.group("catalog")
def catalog_group():
    """The shop's product catalog, as Aftersale keeps it."""


@catalog_group.command("sync")
@click.option("--shop", "domain", required=True, help="the shop's domain")
@pass_context
def sync_command(ctx, domain):
    """Store every product the shop's platform lists (idempotent; webhooks keep it fresh)."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from aftersale.core.errors import DeliveryFailed
    from aftersale.workers.shop_catalog import sync_catalog

    runtime = ctx.runtime
    shop_id = _shop_id(runtime, domain)
    with _bar(f"syncing the catalog of {domain}") as bar:
        try:
            summary = sync_catalog(
                runtime, shop_id, progress=(lambda n: bar(f"{n} products")) if bar else None
            )
        except DeliveryFailed as exc:
            raise click.ClickException(f"{domain}: {exc}") from exc
    click.echo(
        f"{domain}: {summary.products} products in {summary.pages} pages,"
        f" {summary.written} stored or updated"
    )


@click.command("recommend")
@click.option("--shop", "domain", required=True, help="the shop's domain")
@click.option("--order", "order_ref", required=True, help="the order's id on the platform")
@click.option("-n", "count", default=3, show_default=True, type=click.IntRange(1, 50))
@pass_context
def recommend_command(ctx, domain, order_ref, count):
    """What a mail about this order would recommend, and why."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    from aftersale.store import goes_with

    runtime = ctx.runtime
    shop_id = _shop_id(runtime, domain)
    with runtime.engine.connect() as conn:
        bought, customer = goes_with.order_products(conn, shop_id, order_ref)
        if not bought:
            raise click.ClickException(
                f"order {order_ref} of {domain} is not stored, or has no catalog products"
            )
        found = goes_with.recommend(conn, shop_id, bought, customer, count)
    console = _console()
    console.print(f"order {order_ref}: products {', '.join(bought)}")
    if not found:
        console.print(
            "nothing to recommend: no pair reaches the minimum support and no best-seller"
            " shares a product type or tag (or the customer owns them all)"
        )
        return
    table = Table(title=f"recommendations for order {order_ref}")
    for name in ("product", "title", "price", "reason", "together", "confidence", "lift"):
        table.add_column(name, justify="right" if name in ("together", "lift") else "left")
    for rec in found:
        paired = rec.reason == "bought_with"
        table.add_row(
            rec.product.product_ref,
            rec.product.title or "",
            rec.product.price or "",
            rec.why(),
            str(rec.together) if paired else "-",
            f"{rec.confidence:.2f}" if paired else "-",
            f"{rec.lift:.2f}" if paired else "-",
        )
    console.print(table)


@click.command("insights")
@click.option("--shop", "domain", required=True, help="the shop's domain")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--refresh", is_flag=True, help="recount the model from the stored orders first")
@pass_context
def insights_command(ctx, domain, limit, refresh):
    """The shop's strongest product pairs and its repurchase cycles."""
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.table import Table

    from aftersale.store import catalog, recommend
    from aftersale.workers.recommend_model import refresh_shop

    runtime = ctx.runtime
    shop_id = _shop_id(runtime, domain)
    if refresh:
        with _bar(f"recounting the model of {domain}"):
            done = refresh_shop(runtime, shop_id)
        click.echo(
            f"counted {done.orders} orders: {done.products} products,"
            f" {done.pairs} pairs, {done.cycles} cycles"
        )
    with runtime.engine.connect() as conn:
        pairs = recommend.top_pairs(conn, shop_id, limit)
        cycles = recommend.cycles(conn, shop_id, limit)
        refs = {p.product_ref for p in pairs} | {p.other_ref for p in pairs}
        refs |= {c.ref for c in cycles if c.scope == "product"}
        titles = {ref: row.title for ref, row in catalog.get_products(conn, shop_id, refs).items()}
    console = _console()
    table = Table(title=f"bought together at {domain}")
    for name in ("product", "with", "orders together", "confidence", "lift"):
        table.add_column(name)
    for pair in pairs:
        table.add_row(
            _named(pair.product_ref, titles),
            _named(pair.other_ref, titles),
            str(pair.together),
            f"{pair.confidence:.2f}",
            f"{pair.lift:.2f}",
        )
    console.print(table if pairs else "no product pairs yet (try --refresh)")
    table = Table(title=f"repurchase cycles at {domain}")
    for name in ("per", "product or type", "median days", "observations"):
        table.add_column(name)
    for row in cycles:
        name = _named(row.ref, titles) if row.scope == "product" else row.ref
        table.add_row(row.scope, name, f"{row.median_days:.1f}", str(row.observations))
    console.print(table if cycles else "no repeat purchases yet")


def _named(ref: str, titles: dict) -> str:
    title = titles.get(ref)
    return f"{title} ({ref})" if title else ref


@contextmanager
def _bar(what: str):
    """A spinner with elapsed time on a terminal, updated by the callback it yields (None
    elsewhere: the work logs its own progress lines)."""
    if not sys.stderr.isatty():
        yield None
        return
    # deferred import: each command loads only what it uses (all of them: 2.3 s)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task(what, total=None)
        yield lambda text: progress.update(task, description=f"{what}: {text}")


def register(group: click.Group) -> None:
    group.add_command(catalog_group)
    group.add_command(recommend_command)
    group.add_command(insights_command)
