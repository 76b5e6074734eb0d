"""What a command prints when a setting is wrong or a service is down: one or two lines.

The first line names the setting and its value (password masked) and says what went wrong,
the second what to do; the exit status is 1. The traceback is printed too only with
``aftersale --debug`` or LOG_LEVEL=DEBUG. Every command gets this from :class:`Group`, the
``aftersale`` group's class, which looks the exception (or one it was raised from) up in
:data:`EXPLANATIONS`; anything not in the table is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import click

from aftersale.core.config import ConfigError, mask_url

#: settings whose value is a URL that may hold a password, and the Config field of each
URL_SETTINGS = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "MAIL_URL": "mail_url",
    "SMS_URL": "sms_url",
}
#: settings that are secrets through and through (never printed, removed from any text)
SECRET_SETTINGS = ("SECRET_KEY", "SECRET_KEY_PREVIOUS", "SHOPIFY_API_SECRET", "WEBHOOK_SECRET")
#: PostgreSQL's codes for "undefined table" and "undefined column"
MISSING_SCHEMA_CODES = ("42P01", "42703")


@dataclass(frozen=True)
class Explanation:
    """One row of the table: which exception, the setting to blame, what to say and to do."""

    #: ``module:Class``; looked up only if the module is already imported (else nothing
    #: raised can be an instance of it), so the table costs no import
    exception: str
    #: the setting shown as ``NAME=value``; None when the message names it already
    setting: str | None
    #: the first line after ``NAME=value: ``; ``{detail}`` is the error's first line
    problem: str
    #: the second line: what to do
    advice: str | None
    #: a further test on the exception, for rows that share an exception class
    when: Callable[[BaseException], bool] | None = None


def _detail(exc: BaseException) -> str:
    """The first line of what the driver or library said (SQLAlchemy's ``orig`` when wrapped)."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return (lines[0].strip() if lines else type(inner).__name__)[:300]


def _missing_schema(exc: BaseException) -> bool:
    inner = getattr(exc, "orig", None)
    code = getattr(inner, "sqlstate", None) or getattr(inner, "pgcode", None)
    text = str(inner).lower()
    return code in MISSING_SCHEMA_CODES or "no such table" in text or "no such column" in text


def _rules_problem(exc) -> str:
    errors = list(getattr(exc, "errors", []))
    if len(errors) == 1 and errors[0].message == "rules folder not found":
        return "the rules folder does not exist"
    shown = "\n".join(f"  {e}" for e in errors[:5])
    more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
    return f"{len(errors)} error(s) in the rules, nothing loaded:\n{shown}{more}"


def _rules_advice(exc) -> str:
    errors = list(getattr(exc, "errors", []))
    if len(errors) == 1 and errors[0].message == "rules folder not found":
        return "Create it, or point RULES_DIR at your rules folder (examples/starter has a start)."
    return "Fix them; `aftersale rules check` lists every error with its file and line."


CONNECT_DATABASE = "Start the database server, or fix DATABASE_URL (host, port, user, password)."

EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation("aftersale.core.config:ConfigError", None, "{detail}", None),
    Explanation("aftersale.workers.channels.base:ChannelUnavailable", None, "{detail}", None),
    Explanation("aftersale.rules.errors:RulesInvalid", "RULES_DIR", "{rules}", "{rules_advice}"),
    Explanation(
        "aftersale.store.migrate:SchemaNotCurrent",
        "DATABASE_URL",
        "{detail}",
        "Run `aftersale db upgrade`.",
    ),
    Explanation(
        "sqlalchemy.exc:DBAPIError",
        "DATABASE_URL",
        "the database has no Aftersale schema, or an old one ({detail})",
        "Run `aftersale db upgrade`.",
        when=_missing_schema,
    ),
    Explanation(
        "sqlalchemy.exc:OperationalError",
        "DATABASE_URL",
        "cannot use the database ({detail})",
        CONNECT_DATABASE,
    ),
    Explanation(
        "sqlalchemy.exc:InterfaceError",
        "DATABASE_URL",
        "cannot use the database ({detail})",
        CONNECT_DATABASE,
    ),
    Explanation(
        "redis.exceptions:ConnectionError",
        "REDIS_URL",
        "cannot connect to Redis ({detail})",
        "Start Redis, or fix REDIS_URL (host, port, password).",
    ),
    Explanation(
        "redis.exceptions:TimeoutError",
        "REDIS_URL",
        "Redis does not answer ({detail})",
        "Check that Redis is running and reachable, or fix REDIS_URL.",
    ),
    Explanation(
        "aftersale.core.crypto:CredentialsUnreadable",
        None,
        "SECRET_KEY: {detail}",
        "Set the key they were stored with as SECRET_KEY, or as SECRET_KEY_PREVIOUS while"
        " rotating.",
    ),
    Explanation(
        "alembic.util.exc:CommandError",
        "DATABASE_URL",
        "{detail}",
        "`aftersale db current` shows the database's revision; `head` is the newest.",
    ),
)


def _class(path: str):
    module, _, name = path.partition(":")
    loaded = sys.modules.get(module)
    return getattr(loaded, name, None) if loaded else None


def _causes(exc: BaseException):
    """The exception and those it was raised from or while handling, innermost last."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _settings(context) -> dict[str, str]:
    """Setting name -> value: from the loaded Config when there is one, else the environment."""
    config = getattr(context, "_config", None)
    values = {name: os.environ.get(name, "") for name in (*URL_SETTINGS, *SECRET_SETTINGS)}
    values["RULES_DIR"] = os.environ.get("RULES_DIR", "")
    if config is not None:
        values.update({name: getattr(config, field) for name, field in URL_SETTINGS.items()})
        values["RULES_DIR"] = str(config.rules_dir)
        values["SECRET_KEY"] = config.secret_key
        values["SHOPIFY_API_SECRET"] = ",".join(config.shopify_api_secrets)
    return values


def _secrets_in(values: dict[str, str]) -> set[str]:
    """Every secret a message could repeat: passwords of the URL settings, the secret keys."""
    found = set()
    for name in URL_SETTINGS:
        try:
            password = urlsplit(values.get(name) or "").password
        except ValueError:
            password = None
        if password:
            found |= {password, unquote(password)}
    for name in SECRET_SETTINGS:
        found |= {part for part in (values.get(name) or "").split(",") if part}
    return {s for s in found if len(s) >= 3}


def explain(exc: BaseException, context=None) -> str | None:
    """The one- or two-line message for ``exc``, or None when the table does not know it."""
    for cause in _causes(exc):
        for row in EXPLANATIONS:
            cls = _class(row.exception)
            if cls is None or not isinstance(cause, cls) or (row.when and not row.when(cause)):
                continue
            values = _settings(context)
            problem = row.problem.format(
                detail=_detail(cause),
                rules=_rules_problem(cause) if "{rules}" in row.problem else "",
            )
            if row.setting:
                value = values.get(row.setting) or "(not set)"
                if row.setting in URL_SETTINGS:
                    value = mask_url(value)
                problem = f"{row.setting}={value}: {problem}"
            message = problem
            if row.advice:
                advice = row.advice.format(
                    rules_advice=_rules_advice(cause) if "{rules_advice}" in row.advice else ""
                )
                message += f"\n  {advice}"
            for secret in sorted(_secrets_in(values), key=len, reverse=True):
                message = message.replace(secret, "***")
            return message
    return None


def debugging(context) -> bool:
    """``aftersale --debug`` or LOG_LEVEL=DEBUG: show tracebacks."""
    return bool(getattr(context, "debug", False)) or (
        os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"
    )


class Group(click.Group):
    """A click group whose commands' known failures become a short message (see the module)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = explain(exc, ctx.obj)
            if message is None:
                raise
            if debugging(ctx.obj):
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            elif not isinstance(exc, ConfigError):
                message += " (--debug shows the traceback)" if "\n" in message else ""
            raise click.ClickException(message) from exc
