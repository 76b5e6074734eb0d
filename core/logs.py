"""Structured logs: one JSON object a line, carrying shop, delivery, event, rule and action ids.

Context is bound with :func:`bind` (contextvars), so every line logged while a
delivery or action is handled carries its ids without passing them around;
``grep '"shop":"demo.myshopify.com"'`` follows a store's whole story.

Our own lines go straight from structlog to the stream, rendered with orjson:
a webhook receiver logs a line per request, and routing that through the
standard library's LogRecord and formatter cost a quarter of the receiver's
CPU (measured, see docs/performance.md). Library logs (RQ, granian,
SQLAlchemy, Alembic) go through the standard library to the same stream in
the same JSON shape.

Never log secrets, bodies or full customer PII: use :func:`mask_email` and
:func:`mask_phone` for anything that identifies a customer.
"""

from __future__ import annotations

import logging
import re
import sys

import orjson
import structlog
from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    clear_contextvars,
    unbind_contextvars,
)

__all__ = [
    "bind",
    "bound",
    "clear",
    "configure",
    "default_format",
    "describe_error",
    "get_logger",
    "library_level",
    "mask_email",
    "mask_phone",
    "scrub",
    "unbind",
]

bind = bind_contextvars
bound = bound_contextvars
clear = clear_contextvars
unbind = unbind_contextvars


def _orjson_dumps(value, **_kw) -> bytes:
    return orjson.dumps(value, default=str)


class _CurrentStderr:
    """Bytes written to whatever ``sys.stderr`` is at the moment of writing.

    Loggers are cached on first use; binding them to the stream object that
    existed then would break when it is replaced (test capture, daemons).
    """

    def write(self, data: bytes) -> None:
        stream = sys.stderr
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
        else:
            stream.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def configure(level: str = "INFO", fmt: str = "json", stream=None) -> None:
    """Set up structlog and the standard library's root logger (idempotent)."""
    global _generation
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrub_error_fields,
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        factory = structlog.BytesLoggerFactory(
            getattr(stream, "buffer", stream) if stream else _STDERR
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_colours(stream))
        factory = structlog.PrintLoggerFactory(stream or sys.stderr)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _generation += 1
    _configure_stdlib(numeric, fmt, stream, shared)


def _configure_stdlib(level: int, fmt: str, stream, shared: list) -> None:
    stdlib_renderer = (
        structlog.processors.JSONRenderer(
            serializer=lambda v, **kw: orjson.dumps(v, default=str).decode()
        )
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=_colours(stream))
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                stdlib_renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler._aftersale = True
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_aftersale", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # RQ logs every job start and end at INFO; our own lines already say what each job did.
    quiet = library_level(level)
    for noisy in ("rq.worker", "rq.queue", "rq.scheduler", "mail.log", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(quiet)


def library_level(level: int | str) -> int:
    """The level for RQ's per-job chatter ("Job OK", "result discarded"): kept only at DEBUG.

    ``Worker.work(logging_level=...)`` sets the ``rq.worker`` level itself, so
    the worker passes this, not LOG_LEVEL, or RQ's lines come back at INFO.
    """
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    return logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING


def default_format(stream=None) -> str:
    """``console`` on a terminal (a person reads it), ``json`` otherwise (a machine does)."""
    target = stream or sys.stderr
    isatty = getattr(target, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def _colours(stream) -> bool:
    """Colour codes only for a terminal: in a file or a pipe they are noise."""
    return default_format(stream) == "console"


def get_logger(name: str):
    """A structlog logger whose lines carry ``"logger": name``.

    Stays lazy until its first line: binding at import time would freeze
    structlog's default (console) configuration into loggers of modules
    imported before :func:`configure` ran.
    """
    return _NamedLogger(name)


_generation = 0  # bumped by configure(); loggers resolved under an older one resolve again


class _NamedLogger:
    """A structlog logger bound to ``logger=name``, resolved on first use after each configure()."""

    __slots__ = ("_name", "_bound", "_generation")

    def __init__(self, name: str):
        self._name = name
        self._bound = None
        self._generation = -1

    def _logger(self):
        if self._generation != _generation:
            self._bound = structlog.get_logger().bind(logger=self._name)
            self._generation = _generation
        return self._bound

    def __getattr__(self, method: str):
        return getattr(self._logger(), method)


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


# -- error text: what a database or library says may carry customer data -------------

_EMAIL = re.compile(r"[\w.+'-]{1,64}@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d[\d\s().-]{5,}\d")
#: SQLAlchemy's "[parameters: ...]" block and a driver's "DETAIL: Key (email)=(...)" lines
_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(?:\(|\[|$))", re.DOTALL)
_DETAIL = re.compile(r"^\s*(DETAIL|CONTEXT|HINT):.*$", re.MULTILINE)
#: PostgreSQL quotes the offending value: invalid input syntax for type integer: "abc"
_QUOTED_INPUT = re.compile(r'(invalid input (?:syntax|value)[^:]*: )"[^"]*"')
ERROR_FIELDS = ("error", "exception", "reason")


def scrub(text: str) -> str:
    """Error text without the customer data drivers put in it: parameters, values, addresses.

    Engines are created with ``hide_parameters=True`` already; this is the second
    line of defence for text that reaches a log line or a stored ``error`` column.
    """
    text = _PARAMETERS.sub("[parameters hidden]", text)
    text = _DETAIL.sub("", text)
    text = _QUOTED_INPUT.sub(r'\1"…"', text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)) or "***", text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)) or "***", text)


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """``Type: first line of the message``, scrubbed and bounded: for logs and stored errors."""
    message = str(exc).strip().splitlines()
    first = message[0] if message else ""
    return scrub(f"{type(exc).__name__}: {first}")[:limit]


def scrub_error_fields(_logger, _method, event_dict: dict) -> dict:
    """structlog processor: scrub the error and traceback text of every line."""
    for key in ERROR_FIELDS:
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = scrub(value)
    return event_dict
