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
is kept for the clients that honour media queries.
"""

from __future__ import annotations

from email import policy as email_policy
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote

import css_inline

from workers.render import Rendered

if TYPE_CHECKING:  # executors import this module
    from workers.executors.base import ActionContext

_INLINER = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
LIST_HEADERS = ("list-unsubscribe", "list-unsubscribe-post")


class LinkListHeader(UnstructuredHeader):
    """``<url>, <mailto:...>`` folded only between its entries, never encoded.

    The email package would turn a line longer than 78 characters (any signed
    URL) into RFC 2047 encoded words, which no mail client reads as a link.
    RFC 5322 allows lines up to 998 characters, and RFC 2369 folding between
    the bracketed entries.
    """

    def fold(self, *, policy):
        entries = [entry.strip() for entry in str(self).split(",")]
        return f"{self.name}: " + ("," + policy.linesep + " ").join(entries) + policy.linesep


def _policy():
    registry = HeaderRegistry()
    for name in LIST_HEADERS:
        registry.map_to_type(name, LinkListHeader)
    return email_policy.default.clone(header_factory=registry)


MAIL_POLICY = _policy()


def compose_email(
    runtime, ctx: ActionContext, rendered: Rendered, recipient: str, links=None
) -> EmailMessage:
    settings = runtime.rules.settings
    action = ctx.action
    sender = settings.sender or runtime.config.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aftersale.local"
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(runtime.clock.now())
    message["Message-ID"] = f"<action-{action.id}.{action.shop_id}@{domain}>"
    reply_to = action.params.get("reply_to") or settings.reply_to
    if reply_to:
        message["Reply-To"] = reply_to
    message["X-Aftersale-Rule"] = action.rule
    if action.category == "marketing" and links is not None:
        add_unsubscribe_headers(message, links, settings.storefront.unsubscribe_email)
    message.set_content(rendered.text)
    if rendered.html:
        message.add_alternative(inline_css(rendered.html), subtype="html")
    message["Content-Language"] = rendered.locale  # after the parts: set_content clears Content-*
    return message


def add_unsubscribe_headers(message: EmailMessage, links, unsubscribe_email: str | None) -> None:
    """RFC 2369 / RFC 8058 headers: one-click HTTPS first, then mail for older clients."""
    token_url = links.unsubscribe()
    targets = [f"<{token_url}>"]
    if unsubscribe_email:
        token = token_url.rsplit("/", 1)[-1]
        targets.append(f"<mailto:{unsubscribe_email}?subject={quote('unsubscribe ' + token)}>")
    message["List-Unsubscribe"] = ", ".join(targets)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


def inline_css(html: str) -> str:
    """CSS from ``<style>`` blocks copied into ``style`` attributes, as mail clients need."""
    return _INLINER.inline(html)
