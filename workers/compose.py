"""Building the email itself: headers, text and HTML parts.

The Message-ID is derived from the action id, so a message re-sent after a
worker died mid-send carries the same id and receiving systems can tell.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from workers.executors.base import ActionContext
from workers.render import Rendered


def compose_email(runtime, ctx: ActionContext, rendered: Rendered, recipient: str) -> EmailMessage:
    settings = runtime.rules.settings
    action = ctx.action
    sender = settings.sender or runtime.config.mail_from
    domain = parseaddr(sender)[1].rpartition("@")[2] or "aftersale.local"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(runtime.clock.now())
    message["Message-ID"] = f"<action-{action.id}.{action.shop_id}@{domain}>"
    reply_to = action.params.get("reply_to") or settings.reply_to
    if reply_to:
        message["Reply-To"] = reply_to
    message["X-Aftersale-Rule"] = action.rule
    message.set_content(rendered.text)
    if rendered.html:
        message.add_alternative(rendered.html, subtype="html")
    return message
