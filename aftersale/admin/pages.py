"""The admin's operational pages: shops, recent deliveries, an order's timeline, an action's
message preview, and the dead letters with Retry and Cancel."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from aftersale.admin import timeline
from aftersale.admin.blueprint import bp, log, runtime, sandboxed
from aftersale.store import action_queries, delivery_queries, monitoring
from aftersale.store import actions as action_store
from aftersale.store import shops as shop_store
from aftersale.store.actions import ActionStatus
from aftersale.store.deliveries import UNPROCESSED
from aftersale.store.tables import shops as shops_table

OUTCOMES = sorted({*UNPROCESSED, "processed", "ignored", "stale", "failed"})
PAGE = 100


@bp.get("/")
def home():
    return redirect(url_for("admin.shops"))


@bp.get("/shops")
def shops():
    rt = runtime()
    with rt.engine.connect() as conn:
        statuses = {s.domain: s for s in monitoring.shop_statuses(conn, rt.clock.now())}
        rows = shop_store.overview(conn)
    return render_template("admin/shops.html", shops=rows, statuses=statuses)


@bp.get("/deliveries")
def deliveries():
    rt = runtime()
    shop = request.args.get("shop") or None
    topic = request.args.get("topic") or None
    outcome = request.args.get("outcome") or None
    before = _before()
    with rt.engine.connect() as conn:
        found = delivery_queries.search(
            conn,
            shop=shop,
            topic=topic,
            status=outcome if outcome in OUTCOMES else None,
            limit=PAGE + 1,
            before=before,
        )
        found, older = found[:PAGE], _older(found)
        orders = timeline.orders_of(conn, [row.id for row in found])
        shop_ids = dict(conn.execute(select(shops_table.c.domain, shops_table.c.id)).all())
    filters = {"shop": shop or "", "topic": topic or "", "outcome": outcome or ""}
    return render_template(
        "admin/deliveries.html",
        deliveries=found,
        orders=orders,
        shop_ids=shop_ids,
        outcomes=OUTCOMES,
        filters=filters,
        pages=_pages("admin.deliveries", filters, before, older),
    )


@bp.get("/orders")
def find_order():
    """The order search form: shop and order number to the timeline."""
    rt = runtime()
    shop = request.args.get("shop", "").strip()
    order = request.args.get("order", "").strip()
    with rt.engine.connect() as conn:
        shop_id = conn.execute(
            select(shops_table.c.id).where(shops_table.c.domain == shop)
        ).scalar()
    if shop_id is None or not order:
        flash(f"No shop {shop!r}." if shop_id is None else "Give an order number.")
        return redirect(url_for("admin.deliveries"))
    return redirect(url_for("admin.order", shop_id=shop_id, order_ref=order))


@bp.get("/shops/<int:shop_id>/orders/<order_ref>")
def order(shop_id: int, order_ref: str):
    rt = runtime()
    with rt.engine.connect() as conn:
        shop = shop_store.get_shop(conn, shop_id)
        if shop is None:
            abort(404)
        story = timeline.order_timeline(conn, shop_id, order_ref)
    return render_template("admin/order.html", shop=shop, order_ref=order_ref, story=story)


@bp.get("/actions/<int:action_id>/preview")
def preview(action_id: int):
    # deferred import: rendering loads the workers' renderer, which only this page needs
    from aftersale.admin.previews import NoPreview, action_preview

    try:
        action, rendered = action_preview(runtime(), action_id)
    except NoPreview as exc:
        return render_template("admin/preview.html", problem=str(exc), action_id=action_id), 404
    return render_template("admin/preview.html", action=action, rendered=rendered)


@bp.get("/actions/<int:action_id>/preview.html")
def preview_html(action_id: int):
    """The HTML part alone, as its own sandboxed document (no script, no form, no framing)."""
    # deferred import: rendering loads the workers' renderer, which only this page needs
    from aftersale.admin.previews import NoPreview, action_preview
    from aftersale.workers.compose import inline_css

    try:
        _, rendered = action_preview(runtime(), action_id)
    except NoPreview:
        abort(404)
    if not rendered.html:
        abort(404)
    return sandboxed(inline_css(rendered.html))


@bp.get("/dead")
def dead_letters():
    before = _before()
    with runtime().engine.connect() as conn:
        found = action_queries.search(
            conn, status=ActionStatus.DEAD.value, limit=PAGE + 1, before=before
        )
    return render_template(
        "admin/dead.html",
        actions=found[:PAGE],
        pages=_pages("admin.dead_letters", {}, before, _older(found)),
    )


def _before() -> int | None:
    """The ``before`` id of a list's later page (a positive integer), else None: the newest."""
    value = request.args.get("before", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _older(found: list) -> int | None:
    """The ``before`` of the next page when a list fetched one row more than it shows."""
    return found[PAGE - 1].id if len(found) > PAGE else None


def _pages(endpoint: str, filters: dict, before: int | None, older: int | None) -> dict:
    """Links to the newest page (when not on it) and the next older one (when there is one),
    keeping the list's filters."""
    kept = {name: value for name, value in filters.items() if value}
    return {
        "newest": url_for(endpoint, **kept) if before is not None else None,
        "older": url_for(endpoint, **kept, before=older) if older is not None else None,
    }


@bp.post("/actions/<int:action_id>/retry")
def retry(action_id: int):
    """A failed or dead action due again now, with a fresh round of attempts."""
    rt = runtime()
    with rt.engine.begin() as conn:
        done = action_store.retry(conn, [action_id], rt.clock.now())
    if done:
        log.info("admin.action_retried", action_id=action_id)
        flash(f"Action {action_id} is due again now; the scheduler hands it to a worker.")
    else:
        flash(f"Action {action_id} was not retried: only failed or dead actions can be.")
    return redirect(_back())


@bp.post("/actions/<int:action_id>/cancel")
def cancel(action_id: int):
    """Give up on a dead letter (or a pending action): it ends ``skipped (cancelled)``."""
    rt = runtime()
    now = rt.clock.now()
    reason = "cancelled in the admin page"
    with rt.engine.begin() as conn:
        done = action_store.cancel(conn, action_id, now, reason) or action_store.transition(
            conn,
            action_id,
            ActionStatus.DEAD,
            ActionStatus.SKIPPED,
            now,
            skip_reason="cancelled",
            last_error=f"{reason} after it was dead",
            job_id=None,
        )
    if done:
        log.info("admin.action_cancelled", action_id=action_id)
        flash(f"Action {action_id} cancelled.")
    else:
        flash(f"Action {action_id} was not cancelled: it is running or already finished.")
    return redirect(_back())


def _back() -> str:
    """Where a Retry or Cancel form came from (an admin path), else the dead letters."""
    target = request.form.get("back", "")
    if target.startswith("/admin/"):
        return target
    return url_for("admin.dead_letters")
