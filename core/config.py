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
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from aftersale.core.dkim import DkimKey, DkimKeyError, load_key
from aftersale.core.logs import default_format as default_log_format

# The built-in data folders are found next to the code, in the folder above core/:
# in a checkout (and an editable install) that is the repository root, which keeps
# templates/, examples/ and tests/fixtures/; installed from a wheel it is the package
# folder site-packages/aftersale/, where setup.cfg ships the same folders as package data
# (aftersale.templates, aftersale.examples, aftersale.tests.fixtures.shopify).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TEMPLATES_DIR = PROJECT_ROOT / "templates"
EXAMPLES_DIR = PROJECT_ROOT / "examples"
DEFAULT_RULES_DIR = EXAMPLES_DIR / "starter"
MIB = 1024 * 1024
#: the admin page's password is guessed online only (login is rate-limited), but not a short one
ADMIN_PASSWORD_MIN = 12
MAIL_SCHEMES = ("smtp", "smtps", "file", "memory", "postmark", "postmark+http")
SMS_SCHEMES = ("twilio", "twilio+http", "memory")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: what a well-formed value looks like, said after every complaint about one
URL_EXAMPLES = {
    "DATABASE_URL": "sqlite:///path/to/aftersale.db or postgresql://user:password@host:5432/db",
    "REDIS_URL": "redis://:password@host:6379/0",
    "MAIL_URL": "smtp://user:password@host:587?starttls=1 (or smtps://, postmark://, file://,"
    " memory://)",
    "SMS_URL": "twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com?from=%2B15005550006",
}
#: schemes whose user name is itself the secret (an API token), e.g. postmark://TOKEN@host
_TOKEN_USER_SCHEMES = ("postmark", "postmark+http")
_SECRET_QUERY = re.compile(
    r"([?&][^=&#]*(?:pass|secret|token|key|auth|sig)[^=&#]*=)[^&#]*", re.IGNORECASE
)
MASK = "***"


class ConfigError(ValueError):
    """A setting is missing or malformed; raised at start-up, never at run time."""


def mask_url(url: str | None) -> str:
    """``url`` safe to print: its password (and a token standing as user name, and
    secret-looking query values) replaced by ``***``. Never raises, whatever the input.

    >>> mask_url("smtp://bob:hunter2@mail.example.com:587")
    'smtp://bob:***@mail.example.com:587'
    """
    if not url:
        return url or ""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _SECRET_QUERY.sub(rf"\1{MASK}", text)
    # the authority ends at the query or fragment; a password may hold "/" but not "?" or "#"
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    first = rest.find("@")
    if at < 0 and first >= 0 and "/" not in rest[:first]:
        at = first  # a "?" or "#" inside the password
    if at >= 0 and not rest.startswith("/"):
        userinfo, after = rest[:at], rest[at:]
        user, colon, _password = userinfo.partition(":")
        if colon:
            rest = f"{user}:{MASK}{after}"
        elif scheme.lower() in _TOKEN_USER_SCHEMES:
            rest = f"{MASK}{after}"
    return _SECRET_QUERY.sub(rf"\1{MASK}", f"{scheme}://{rest}")


def check_url(setting: str, url: str, schemes: tuple[str, ...], *, need_host=()) -> None:
    """Raise ConfigError unless ``url`` has one of ``schemes`` (``+driver`` suffixes allowed for
    DATABASE_URL), a numeric port when it has one, and a host for the schemes in ``need_host``.

    The message names the setting, shows the value with its password masked, and says
    what a good value looks like.
    """
    shown = mask_url(url)
    example = URL_EXAMPLES.get(setting)
    hint = f"; expected {example}" if example else ""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" of an IPv6 host
        raise ConfigError(f"{setting}={shown}: not a URL ({exc}){hint}") from None
    scheme = parts.scheme.lower()
    base = scheme.split("+")[0] if setting == "DATABASE_URL" else scheme
    if base not in schemes:
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ConfigError(f"{setting}={shown}: {got} is not supported ({', '.join(schemes)}){hint}")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        host_port = urlsplit(shown).netloc.rpartition("@")[2].rpartition("]")[2]
        port = host_port.rpartition(":")[2] if ":" in host_port else ""
        if port:
            problem = f"the port {port!r} is not a number from 1 to 65535"
        else:  # what broke the port is in the password, which is not shown
            problem = "cannot read host and port (write '/', '?', '#' or '@' in a password as %2F, %3F, %23, %40)"
        raise ConfigError(f"{setting}={shown}: {problem}{hint}") from None
    if scheme in need_host and not parts.hostname:
        raise ConfigError(f"{setting}={shown}: no host name{hint}")


@dataclass(frozen=True)
class Config:
    """All settings of one Aftersale deployment.

    Secrets that are not set are generated once into the instance folder
    (``dev-secrets.json``) so the embedded defaults work out of the box; a
    production deployment (``AFTERSALE_ENV=production``) must set them, and an
    https PUBLIC_URL, or the Config does not load.
    """

    instance_path: Path
    database_url: str
    redis_url: str = "redis://localhost:6379/0"
    shopify_api_secrets: tuple[str, ...] = ()
    #: the app's client id (API key), for the install link and the token exchange
    shopify_api_key: str = ""
    #: tests only (an override, never read from the environment): where the install's token
    #: exchange and first Admin API calls go instead of https://{shop}
    shopify_admin_url: str = ""
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
    #: raw webhook bodies and headers are emptied this many days after receipt (the
    #: delivery row and its outcome stay): what Shopify sent holds customer data
    delivery_body_days: int = 30
    #: how often each connected shop's platform is asked for orders changed since the last
    #: run and its webhooks are checked (workers/reconcile.py); 0 turns it off
    reconcile_minutes: int = 15
    log_level: str = "INFO"
    log_format: str = "json"
    environment: str = "development"
    #: a caller sending ``Authorization: Bearer <it>`` gets /readyz's per-check details
    readyz_token: str = ""
    #: why-not records (rules that did not match an event) are deleted after this many days
    rule_miss_days: int = 30
    #: workers and schedulers beat this often; a heartbeat expires after three missed beats
    heartbeat_seconds: float = 5.0
    #: a worker (first one, the next ones +1, +2 ... under ``serve``) and the scheduler serve
    #: Prometheus metrics on these ports; 0 serves none
    worker_metrics_port: int = 0
    scheduler_metrics_port: int = 0
    #: ``/metrics`` is served only with this set, to ``Authorization: Bearer <it>``
    metrics_token: str = ""
    #: the admin page's one password (/admin); unset, the admin page is off
    admin_password: str = ""
    #: DKIM signing of SMTP mail for the deployment's domain; a shop with its own
    #: domain gets its own key in the rule pack's settings.yaml (``dkim:``)
    dkim_key_file: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""
    #: the key above, loaded and checked by :meth:`validated`
    dkim: DkimKey | None = None
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
            "shopify_api_key": env.get("SHOPIFY_API_KEY", ""),
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
            "max_body_bytes": _whole_number(env, "MAX_BODY_BYTES", MIB),
            "delivery_body_days": _whole_number(env, "DELIVERY_BODY_DAYS", 30),
            "reconcile_minutes": _whole_number(env, "RECONCILE_MINUTES", 15),
            "log_level": (env.get("LOG_LEVEL") or "INFO").upper(),
            # readable colours on a terminal, one JSON object a line otherwise (core/logs.py)
            "log_format": env.get("LOG_FORMAT") or default_log_format(),
            "environment": env.get("AFTERSALE_ENV") or "development",
            "readyz_token": env.get("READYZ_TOKEN", ""),
            "rule_miss_days": _number(env, "RULE_MISS_DAYS", 30),
            "heartbeat_seconds": _number(env, "HEARTBEAT_SECONDS", 5.0, float),
            "worker_metrics_port": _number(env, "WORKER_METRICS_PORT", 0),
            "scheduler_metrics_port": _number(env, "SCHEDULER_METRICS_PORT", 0),
            "metrics_token": env.get("METRICS_TOKEN", ""),
            "admin_password": env.get("ADMIN_PASSWORD", ""),
            "dkim_key_file": env.get("DKIM_KEY_FILE", ""),
            "dkim_selector": env.get("DKIM_SELECTOR", ""),
            "dkim_domain": env.get("DKIM_DOMAIN", ""),
        }
        values.update(overrides)
        return cls(**values).validated()

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> Config:
        """Check the values and fill unset secrets; returns the final Config.

        Raises:
            ConfigError: a value is malformed, or AFTERSALE_ENV=production lacks a secret
                or an https PUBLIC_URL (development secrets are never generated then).
        """
        check_url("DATABASE_URL", self.database_url, DATABASE_SCHEMES)
        check_url("REDIS_URL", self.redis_url, REDIS_SCHEMES)
        check_url("MAIL_URL", self.mail_url, MAIL_SCHEMES, need_host=("smtp", "smtps"))
        if self.sms_url:
            check_url("SMS_URL", self.sms_url, SMS_SCHEMES, need_host=("twilio", "twilio+http"))
        if self.log_format not in ("json", "console"):
            raise ConfigError(f"LOG_FORMAT: expected json or console, got {self.log_format!r}")
        if self.max_body_bytes <= 0:
            raise ConfigError("MAX_BODY_BYTES must be positive")
        if self.rule_miss_days <= 0:
            raise ConfigError("RULE_MISS_DAYS must be a positive number of days")
        if self.heartbeat_seconds <= 0:
            raise ConfigError("HEARTBEAT_SECONDS must be a positive number of seconds")
        for setting, port in (
            ("WORKER_METRICS_PORT", self.worker_metrics_port),
            ("SCHEDULER_METRICS_PORT", self.scheduler_metrics_port),
        ):
            if not 0 <= port <= 65535:
                raise ConfigError(
                    f"{setting}={port}: expected a port from 1 to 65535, or 0 for none"
                )
        if self.reconcile_minutes < 0:
            raise ConfigError("RECONCILE_MINUTES must be 0 (off) or a positive number of minutes")
        if self.delivery_body_days <= 0:
            raise ConfigError("DELIVERY_BODY_DAYS must be a positive number of days")
        if self.admin_password and len(self.admin_password) < ADMIN_PASSWORD_MIN:
            raise ConfigError(
                f"ADMIN_PASSWORD: at least {ADMIN_PASSWORD_MIN} characters (it has"
                f" {len(self.admin_password)}); choose a longer one, or unset it to turn the"
                " admin page off"
            )
        changes = {"dkim": self._dkim_key()}
        if self.is_production:
            missing = self.production_problems()
            if missing:
                raise ConfigError(
                    f"AFTERSALE_ENV=production refuses to start; missing: {', '.join(missing)}."
                    ' Set them (see "Production guard" in the README).'
                )
            return dataclasses.replace(self, **changes)
        if not self.shopify_api_secrets or not self.secret_key:
            dev = _dev_secrets(self.instance_path)
            if not self.shopify_api_secrets:
                changes["shopify_api_secrets"] = (dev["SHOPIFY_API_SECRET"],)
            if not self.secret_key:
                changes["secret_key"] = dev["SECRET_KEY"]
        return dataclasses.replace(self, **changes)

    def _dkim_key(self) -> DkimKey | None:
        """The deployment's DKIM key, read and checked now; None when DKIM is not configured."""
        if not (self.dkim_key_file or self.dkim_selector or self.dkim_domain):
            return None
        names = {"domain": "DKIM_DOMAIN", "selector": "DKIM_SELECTOR", "key_file": "DKIM_KEY_FILE"}
        try:
            return load_key(self.dkim_domain, self.dkim_selector, self.dkim_key_file, names=names)
        except DkimKeyError as exc:
            raise ConfigError(f"{exc} (see docs/deliverability.md)") from None

    def warnings(self) -> list[str]:
        """What start-up logs as a warning: settings that work but are unsafe (production
        refuses a plain-http PUBLIC_URL instead)."""
        found = []
        parts = urlsplit(self.public_url)
        if parts.scheme != "https" or not parts.hostname:
            found.append(
                f"PUBLIC_URL={self.public_url} is not https: links in messages (unsubscribe,"
                " reviews, preferences) point there, and customers' clients warn about or block"
                " plain http. Set PUBLIC_URL to the https:// address the app is reachable at;"
                " AFTERSALE_ENV=production refuses to start without one."
            )
        if self.dkim and _shared_file(self.dkim.key_file):
            found.append(
                f"DKIM_KEY_FILE={self.dkim.key_file} can be read by other users: anyone who"
                " reads it can sign mail as the domain. chmod 600 it."
            )
        return found

    @property
    def is_production(self) -> bool:
        return self.environment.strip().lower() == "production"

    def production_problems(self) -> list[str]:
        """What a production deployment lacks: its secrets and an https PUBLIC_URL."""
        problems = []
        if not self.secret_key:
            problems.append("SECRET_KEY")
        if not self.shopify_api_secrets:
            problems.append("SHOPIFY_API_SECRET")
        parts = urlsplit(self.public_url)
        if parts.scheme != "https" or not parts.hostname:
            problems.append(f"an https:// PUBLIC_URL (now {mask_url(self.public_url)})")
        return problems

    def __repr__(self) -> str:
        """Secrets hidden and URLs masked, so a Config in a log or traceback gives nothing away."""
        secret = ("shopify_api_secrets", "webhook_secret", "secret_key", "previous_secret_key")
        secret += ("readyz_token", "sentry_dsn", "metrics_token", "admin_password")
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in secret:
                value = MASK if value else value
            elif f.name.endswith("_url"):
                value = mask_url(value)
            shown.append(f"{f.name}={value!r}")
        return f"Config({', '.join(shown)})"

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


def _number(env: dict, name: str, default, kind=int):
    """A numeric setting, or a ConfigError naming it and what was found."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None


def _shared_file(path: Path) -> bool:
    """Whether users other than the owner may read or write ``path`` (False if it is gone)."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


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


def _whole_number(env: dict, name: str, default: int) -> int:
    """An integer setting; a clear error naming it when it is not one."""
    raw = env.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
