"""What WooCommerce plugins write about the buyer into order and customer meta: consent, language.

WooCommerce itself records no marketing consent and no language on an order;
plugins do, in ``meta_data`` (the REST v3 order and customer keep every key a
plugin writes, ``_``-prefixed ones too). The default keys are read from the
plugins' own source (tests/fixtures/woocommerce/SOURCES.md, "Consent and
language"):

* **Mailchimp for WooCommerce**: ``mailchimp_woocommerce_is_subscribed`` on the
  order ("1" ticked; absent when unticked on the classic checkout, "" on the
  block checkout) and on the WordPress user, where a sync with Mailchimp also
  writes "0" (transactional), "unsubscribed" or "archived". SMS:
  ``mailchimp_woocommerce_sms_consent_subscribed`` (current checkout code) and
  ``mailchimp_woocommerce_sms_subscribed`` (the older classic-checkout path),
  written only when ticked.
* **WPML** (WooCommerce Multilingual): order meta ``wpml_language``, a
  language code ("sl"). **TranslatePress**: order and user meta
  ``trp_language``, a WordPress locale ("sl_SI"). **Polylang** keeps the
  language as a taxonomy; only Polylang Pro shows it, as the top-level
  ``lang`` field of the REST order.

MailPoet, Klaviyo and AutomateWoo keep opt-ins in their own tables or
services, so from them the webhook says nothing: that reads as "unknown",
never as consent. Which keys are read is a per-shop setting
(``settings.yaml`` ``woocommerce: consent_meta / language_meta``); the
connector is told through :func:`keys_in_use`, because topic handlers have a
fixed signature and must stay pure functions of the payload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from aftersale.connectors.sanitize import warn
from aftersale.core.events import iso

EMAIL_CONSENT_KEYS = ("mailchimp_woocommerce_is_subscribed",)
SMS_CONSENT_KEYS = (
    "mailchimp_woocommerce_sms_consent_subscribed",
    "mailchimp_woocommerce_sms_subscribed",
)
LANGUAGE_KEYS = ("wpml_language", "trp_language")
#: Polylang Pro's top-level REST field on the order (not a meta key)
POLYLANG_FIELD = "lang"

#: meta values, lower-cased, and the consent state they mean (Shopify's state names, so
#: both platforms' consent lands in customer_consents alike). Anything else is unknown.
CONSENT_STATES = {
    "1": "subscribed",
    "yes": "subscribed",
    "true": "subscribed",
    "on": "subscribed",
    "subscribed": "subscribed",
    "pending": "subscribed",  # Mailchimp's double opt-in under way: it writes "1" too
    "0": "not_subscribed",
    "": "not_subscribed",  # the block checkout's unticked box
    "no": "not_subscribed",
    "false": "not_subscribed",
    "off": "not_subscribed",
    "transactional": "not_subscribed",
    "not_subscribed": "not_subscribed",
    "unsubscribed": "unsubscribed",
    "archived": "unsubscribed",
}
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")


@dataclass(frozen=True)
class MetaKeys:
    """The meta keys one shop's plugins write; each list is tried in order, the first present
    wins. An empty list turns that reading off."""

    email_consent: tuple[str, ...] = EMAIL_CONSENT_KEYS
    sms_consent: tuple[str, ...] = SMS_CONSENT_KEYS
    language: tuple[str, ...] = LANGUAGE_KEYS

    @classmethod
    def build(
        cls,
        email_consent: Iterable[str] | None = None,
        sms_consent: Iterable[str] | None = None,
        language: Iterable[str] | None = None,
    ) -> MetaKeys:
        """The defaults, with each list that is given (not None) replacing its default."""
        return cls(
            email_consent=EMAIL_CONSENT_KEYS if email_consent is None else tuple(email_consent),
            sms_consent=SMS_CONSENT_KEYS if sms_consent is None else tuple(sms_consent),
            language=LANGUAGE_KEYS if language is None else tuple(language),
        )


DEFAULT_KEYS = MetaKeys()
#: the name of these keys in ``DeliveryMeta.options``
OPTION = "customer_meta"
_keys: ContextVar[MetaKeys] = ContextVar("woocommerce_meta_keys", default=DEFAULT_KEYS)


@contextmanager
def keys_in_use(keys: MetaKeys | None) -> Iterator[None]:
    """Read ``keys`` (a shop's setting) while normalizing one delivery; the defaults otherwise."""
    token = _keys.set(keys or DEFAULT_KEYS)
    try:
        yield
    finally:
        _keys.reset(token)


def current_keys() -> MetaKeys:
    return _keys.get()


def meta_values(payload: dict) -> dict:
    """``meta_data`` as {key: value}; for a repeated key the first, as ``get_meta`` reads it."""
    values: dict = {}
    for meta in payload.get("meta_data") or []:
        key = meta.get("key") if isinstance(meta, dict) else None
        if isinstance(key, str) and key not in values:
            values[key] = meta.get("value")
    return values


def consent_fields(payload: dict, at: datetime | None) -> dict:
    """The customer's consent per channel, as the Shopify connector gives it: the flag
    (``accepts_email_marketing``) and a record (``email_marketing_consent``: state, opt-in
    level, when), so the store keeps the newest per channel in ``customer_consents``.

    ``at`` is when the payload's meta was written (the order's creation for checkout
    boxes, the customer's last change for user meta). No key present: nothing (unknown).
    """
    keys = current_keys()
    values = meta_values(payload)
    found: dict = {}
    for channel, candidates in (("email", keys.email_consent), ("sms", keys.sms_consent)):
        state = _consent_state(values, candidates)
        if state is None:
            continue
        found[f"accepts_{channel}_marketing"] = state == "subscribed"
        found[f"{channel}_marketing_consent"] = {
            "state": state,
            "opt_in_level": "single_opt_in" if state == "subscribed" else None,
            "consent_updated_at": iso(at),
        }
    return found


def _consent_state(values: dict, candidates: tuple[str, ...]) -> str | None:
    for key in candidates:
        if key not in values:
            continue
        value = values[key]
        if isinstance(value, bool):
            return "subscribed" if value else "not_subscribed"
        if isinstance(value, (int, float)):
            value = str(int(value))
        if isinstance(value, str):
            state = CONSENT_STATES.get(value.strip().lower())
            if state is not None:
                return state
        # the event's warnings say why a present key counted as unknown (never as consent)
        warn(f"meta_data.{key}: {str(value)[:40]!r} is not a consent value; treated as unknown")
    return None


def language(payload: dict) -> str | None:
    """The buyer's language: the first configured meta key holding a locale, then Polylang
    Pro's ``lang`` field. ``sl``, ``sl_SI`` and ``pt-br`` are kept as written (rendering
    reads ``_`` and ``-`` alike); a value that is no locale is ignored."""
    values = meta_values(payload)
    for key in current_keys().language:
        found = _locale(values.get(key))
        if found:
            return found
    return _locale(payload.get(POLYLANG_FIELD))


def _locale(value) -> str | None:
    if isinstance(value, str) and _LOCALE.match(value.strip()):
        return value.strip()
    return None
