"""The scheduled reconcile run of one shop: missed orders, then the shop's webhooks.

The scheduler enqueues :func:`reconcile_job` per shop every RECONCILE_MINUTES
(workers/scheduler.py). It walks the orders changed since the shop's cursor
(workers/reconcile.py), then registers the shop's webhooks again: registration
is idempotent, so a healthy shop changes nothing, while a subscription Shopify
removed, or a WooCommerce webhook disabled after seven failures in a row, is
re-created or re-enabled. What was repaired is logged as a warning, reported
to Sentry, and kept with the run for ``aftersale status``.

It lives in the app layer because webhook registration does (it needs the
public URL and the rules' topics, aftersale/shopify_install.py and shops.py).
"""

from __future__ import annotations

import sentry_sdk

from aftersale.core import logs
from aftersale.shopify_install import register_shopify_webhooks
from aftersale.shops import register_woocommerce_webhooks
from aftersale.store import shops as shop_store
from aftersale.store import syncs
from aftersale.workers import job_runtime as jobs
from aftersale.workers.reconcile import reconcile_shop

log = logs.get_logger("aftersale.reconcile")
#: what registration reports for a webhook that was not there or not working
REPAIRS = frozenset({"created", "updated", "reactivated"})


def reconcile_job(shop_id: int) -> dict:
    """RQ job: reconcile one shop's orders, then repair its webhooks; the run's summary."""
    runtime = jobs.current()
    summary = reconcile_shop(runtime, shop_id)
    with runtime.engine.connect() as conn:
        shop = shop_store.get_shop(conn, shop_id)
    if shop is not None and shop.status == "active":
        summary.repaired = repair_webhooks(runtime, shop)
        with runtime.engine.begin() as conn:
            syncs.finish(conn, shop_id, "ok", summary.as_dict(), runtime.clock.now())
    return summary.as_dict()


def repair_webhooks(runtime, shop) -> list[str]:
    """Register the shop's webhooks again; the topics that had to be re-created or re-enabled.

    A failure to reach the platform is logged and reported, never raised: the
    orders part of the run already succeeded, and the next run tries again.
    """
    # deferred import: the registration modules load the web app's install code

    try:
        if shop.platform == "shopify":
            done = register_shopify_webhooks(runtime, shop.domain)
            repaired = sorted(f"{topic} ({what})" for topic, what, _ in done if what in REPAIRS)
        elif shop.platform == "woocommerce":
            done = register_woocommerce_webhooks(runtime, shop.domain)
            repaired = sorted(
                f"{topic} ({what})" for topic, (what, _) in done.items() if what in REPAIRS
            )
        else:
            return []
    except Exception as exc:  # the platform's refusal or outage: reported, retried next run
        error = logs.describe_error(exc, limit=500)
        log.warning("webhooks.check_failed", shop=shop.domain, error=error)
        sentry_sdk.capture_message(f"webhook check failed for {shop.domain}: {error}", "warning")
        return []
    if repaired:
        log.warning(
            "webhooks.repaired", shop=shop.domain, platform=shop.platform, repaired=repaired
        )
        sentry_sdk.capture_message(
            f"{shop.platform} webhooks of {shop.domain} were missing or disabled and were "
            f"repaired: {', '.join(repaired)}",
            "warning",
        )
    return repaired
