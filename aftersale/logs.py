"""Structured logs: one JSON object a line, carrying shop, delivery, event, rule and action ids.

Context is bound with :func:`bind` (contextvars), so every line logged while a
delivery or action is handled carries its ids without passing them around;
``grep '"shop": "demo.myshopify.com"'`` follows a store's whole story. Library
logs (RQ, gunicorn, SQLAlchemy) go through the same renderer.

Never log secrets, bodies or full customer PII: use :func:`mask_email` and
:func:`mask_phone` for anything that identifies a customer.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

__all__ = ["bind", "bound", "clear", "configure", "get_logger", "mask_email", "mask_phone"]

bind = bind_contextvars
bound = bound_contextvars
clear = clear_contextvars
_configured = False


def configure(level: str = "INFO", fmt: str = "json", stream=None) -> None:
    """Route structlog and the standard library through one renderer (idempotent)."""
    global _configured
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_aftersale", False)]:
        root.removeHandler(old)
    handler._aftersale = True
    root.addHandler(handler)
    root.setLevel(level)
    # RQ logs every job start and end at INFO; our own lines already say what each job did.
    quiet = logging.DEBUG if logging.getLevelName(level) <= logging.DEBUG else logging.WARNING
    for noisy in ("rq.worker", "rq.queue", "rq.scheduler", "mail.log"):
        logging.getLogger(noisy).setLevel(quiet)
    _configured = True


def get_logger(name: str):
    return structlog.get_logger(name)


def mask_email(address: str | None) -> str | None:
    """``ana.petrovic@example.com`` -> ``a***@example.com``: enough to tell mails apart in logs."""
    if not address or "@" not in address:
        return None if not address else "***"
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(number: str | None) -> str | None:
    """Keep only the last two digits of a phone number."""
    if not number:
        return None
    return f"***{number[-2:]}"
