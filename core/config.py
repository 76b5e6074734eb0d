"""Configuration from the environment (12-factor), validated once at start-up.

Every process (web, worker, scheduler, CLI) builds one :class:`Config` from
``os.environ`` and passes it down; nothing reads the environment later, so a
test can build a Config by hand and run the real code paths with it.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TEMPLATES_DIR = PROJECT_ROOT / "templates"
EXAMPLES_DIR = PROJECT_ROOT / "examples"
DEFAULT_RULES_DIR = EXAMPLES_DIR / "starter"
MIB = 1024 * 1024
MAIL_SCHEMES = ("smtp", "smtps", "file", "memory", "postmark", "postmark+http")
SMS_SCHEMES = ("twilio", "twilio+http", "memory")


class ConfigError(ValueError):
    """A setting is missing or malformed; raised at start-up, never at run time."""


@dataclass(frozen=True)
class Config:
    """All settings of one Aftersale deployment.

    Secrets that are not set are generated once into the instance folder
    (``dev-secrets.json``) so the embedded defaults work out of the box; a
    production deployment sets them explicitly.
    """

    instance_path: Path
    database_url: str
    redis_url: str = "redis://localhost:6379/0"
    shopify_api_secrets: tuple[str, ...] = ()
    mail_url: str = ""
    mail_from: str = "Aftersale <no-reply@localhost>"
    sms_url: str = ""
    webhook_secret: str = ""
    rules_dir: Path = DEFAULT_RULES_DIR
    templates_dir: Path | None = None
    sentry_dsn: str = ""
    secret_key: str = ""
    previous_secret_key: str = ""
    public_url: str = "http://127.0.0.1:8000"
    queue_prefix: str = "aftersale"
    max_body_bytes: int = MIB
    log_level: str = "INFO"
    log_format: str = "json"
    environment: str = "development"
    #: a caller sending ``Authorization: Bearer <it>`` gets /readyz's per-check details
    readyz_token: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> Config:
        """Build a Config from environment variables, then apply ``overrides``.

        Raises:
            ConfigError: a value is malformed (bad URL scheme, missing folder).
        """
        env = dict(os.environ if environ is None else environ)
        instance = Path(env.get("INSTANCE_PATH") or Path.cwd() / "instance").resolve()
        values = {
            "instance_path": instance,
            "database_url": env.get("DATABASE_URL") or f"sqlite:///{instance / 'aftersale.db'}",
            "redis_url": env.get("REDIS_URL") or cls.redis_url,
            "shopify_api_secrets": _secret_list(env, "SHOPIFY_API_SECRET"),
            "mail_url": env.get("MAIL_URL") or f"file://{instance / 'outbox'}",
            "mail_from": env.get("MAIL_FROM") or cls.mail_from,
            "sms_url": env.get("SMS_URL", ""),
            "webhook_secret": env.get("WEBHOOK_SECRET", ""),
            "rules_dir": Path(env.get("RULES_DIR") or DEFAULT_RULES_DIR),
            "templates_dir": Path(env["TEMPLATES_DIR"]) if env.get("TEMPLATES_DIR") else None,
            "sentry_dsn": env.get("SENTRY_DSN", ""),
            "secret_key": env.get("SECRET_KEY", ""),
            "previous_secret_key": env.get("SECRET_KEY_PREVIOUS", ""),
            "public_url": (env.get("PUBLIC_URL") or cls.public_url).rstrip("/"),
            "queue_prefix": env.get("QUEUE_PREFIX") or cls.queue_prefix,
            "max_body_bytes": int(env.get("MAX_BODY_BYTES") or MIB),
            "log_level": (env.get("LOG_LEVEL") or "INFO").upper(),
            "log_format": env.get("LOG_FORMAT") or "json",
            "environment": env.get("AFTERSALE_ENV") or "development",
            "readyz_token": env.get("READYZ_TOKEN", ""),
        }
        values.update(overrides)
        return cls(**values).validated()

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> Config:
        """Check the values and fill unset secrets; returns the final Config."""
        scheme = urlsplit(self.database_url).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ConfigError(
                f"DATABASE_URL: unsupported database {scheme!r} (sqlite or postgresql)"
            )
        if urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"REDIS_URL: expected redis://host:port/db, got {self.redis_url!r}")
        if urlsplit(self.mail_url).scheme not in MAIL_SCHEMES:
            raise ConfigError(
                f"MAIL_URL: expected smtp://, smtps://, postmark://, file:// or memory://,"
                f" got {self.mail_url!r}"
            )
        if self.sms_url and urlsplit(self.sms_url).scheme not in SMS_SCHEMES:
            raise ConfigError("SMS_URL: expected twilio://SID:TOKEN@api.twilio.com?from=+E164")
        if self.log_format not in ("json", "console"):
            raise ConfigError(f"LOG_FORMAT: expected json or console, got {self.log_format!r}")
        if self.max_body_bytes <= 0:
            raise ConfigError("MAX_BODY_BYTES must be positive")
        changes = {}
        if not self.shopify_api_secrets or not self.secret_key:
            dev = _dev_secrets(self.instance_path)
            if not self.shopify_api_secrets:
                changes["shopify_api_secrets"] = (dev["SHOPIFY_API_SECRET"],)
            if not self.secret_key:
                changes["secret_key"] = dev["SECRET_KEY"]
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The current SECRET_KEY first, then the previous one during a rotation."""
        return tuple(k for k in (self.secret_key, self.previous_secret_key) if k)

    @property
    def webhook_signing_secret(self) -> str:
        """WEBHOOK_SECRET, or one derived from SECRET_KEY (never SECRET_KEY itself, which
        signs links) so outbound webhooks are always signed."""
        if self.webhook_secret:
            return self.webhook_secret
        return hmac.new(
            self.secret_key.encode(), b"aftersale outbound webhooks", "sha256"
        ).hexdigest()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def queue_name(self, purpose: str) -> str:
        """RQ queue names: ``<prefix>-deliveries`` and ``<prefix>-actions``."""
        return f"{self.queue_prefix}-{purpose}"


def _secret_list(env: dict, name: str) -> tuple[str, ...]:
    """The current secret and, during a rotation, the previous one (``<NAME>_PREVIOUS``)."""
    values = [env.get(name, ""), env.get(f"{name}_PREVIOUS", "")]
    return tuple(v for v in values if v)


def _dev_secrets(instance: Path) -> dict:
    """Secrets for a development instance, generated once and kept in the instance folder."""
    path = instance / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    instance.mkdir(parents=True, exist_ok=True)
    values = {"SHOPIFY_API_SECRET": secrets.token_hex(24), "SECRET_KEY": secrets.token_hex(32)}
    tmp = path.with_name(f".dev-secrets.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(values, indent=2))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # fails if another process won the race; then we use its file
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return json.loads(path.read_text())
