"""Building the email itself: headers, a text part always, and HTML inlined for mail clients.

The Message-ID is derived from the action id, so a message re-sent after a
worker died mid-send carries the same id and receiving systems can tell.

Marketing mail carries ``List-Unsubscribe`` (an HTTPS one-click link, plus a
``mailto:`` when the shop names an unsubscribe address) and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), which
Gmail and Yahoo require of bulk senders. Transactional mail (order and
shipping information) carries neither: there is nothing to unsubscribe from.

Gmail and many other clients drop ``<style>`` blocks, so the HTML part has
its CSS inlined into ``style`` attributes (css-inline); the ``<style>`` block
is kept for the clients that honour media queries. The message itself is a
``workers.mail.OutgoingEmail``, turned into MIME only by channels that need it.

The DKIM key is the shop's own (``dkim:`` in its settings, for a shop sending
from its own domain) or else the deployment's (``DKIM_KEY_FILE``); the
signature covers the unsubscribe headers, as RFC 8058 one-click requires.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

import css_inline

from aftersale.workers.mail import OutgoingEmail
from aftersale.workers.render import Rendered

if TYPE_CHECKING:  # executors import this module
    from aftersale.workers.executors.base import ActionContext

_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)


def compose_email(
    runtime, ctx: ActionContext, rendered: Rendered, recipient: str, links=None
) -> OutgoingEmail:
    action = ctx.action
    return build_email(
        runtime,
        ctx.settings,
        rendered,
        recipient,
        links,
        rule=action.rule,
        category=action.category,
        message_key=f"action-{action.id}.{action.shop_id}",
        reply_to=action.params.get("reply_to"),
    )


def build_email(
    runtime,
    settings,
    rendered: Rendered,
    recipient: str,
    links,
    *,
    rule: str,
    category: str,
    message_key: str,
    reply_to: str | None = None,
) -> OutgoingEmail:
    """The message as sent, for an action or a preview (``aftersale templates preview``):
    ``message_key`` is the Message-ID's left side, unique per action."""
    sender = settings.sender or runtime.config.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aftersale.local"
    headers = {"X-Aftersale-Rule": rule}
    if category == "marketing" and links is not None:
        headers.update(unsubscribe_headers(links, settings.storefront.unsubscribe_email))
    headers["Content-Language"] = rendered.locale
    return OutgoingEmail(
        sender=sender,
        to=recipient,
        subject=rendered.subject,
        text=rendered.text,
        html=inline_css(rendered.html) if rendered.html else None,
        message_id=f"<{message_key}@{domain}>",
        date=runtime.clock.now(),
        reply_to=reply_to or settings.reply_to,
        headers=headers,
        dkim=settings.dkim or runtime.config.dkim,
    )


def unsubscribe_headers(links, unsubscribe_email: str | None) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers: one-click HTTPS first, then mail for older clients."""
    token_url = links.unsubscribe()
    targets = [f"<{token_url}>"]
    if unsubscribe_email:
        token = token_url.rsplit("/", 1)[-1]
        targets.append(f"<mailto:{unsubscribe_email}?subject={quote('unsubscribe ' + token)}>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def inline_css(html: str) -> str:
    """CSS from ``<style>`` blocks copied into ``style`` attributes, as mail clients need."""
    return _INLINER.inline(html)
