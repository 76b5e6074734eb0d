"""Removing a person from stored data: who they are (their names) and scrubbing payloads.

Pure functions over dicts and strings, used by ``store/privacy.py``: a
:class:`Person` collects every handle and personal string of one customer from
the rows that mention them, and :func:`scrub` takes those out of a stored
payload (personal keys and addresses dropped, a customer kept only as its id,
any remaining mention replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, field

REDACTED = "[redacted]"
#: keys whose value is personal wherever they appear in a stored payload
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "contact_email",
        "customer_email",
        "note",
        "company",
        "address1",
        "address2",
        "latitude",
        "longitude",
        "browser_ip",
        "client_details",
    }
)
#: keys holding a whole postal address (or a list of them): dropped entirely
ADDRESS_KEYS = frozenset(
    {"shipping_address", "billing_address", "default_address", "addresses", "billing", "shipping"}
)


@dataclass
class Person:
    """Everything that names one customer of one shop; grows as rows are found."""

    refs: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    #: other strings to remove from free text: names, address lines
    strings: set[str] = field(default_factory=set)

    def add_contact(self, email=None, phone=None) -> None:
        if isinstance(email, str) and email.strip():
            self.emails.add(email.strip().lower())
            self.refs.add(f"guest:{email.strip().lower()}")
        if isinstance(phone, str) and phone.strip():
            self.phones.add(phone.strip())

    def learn(self, data, personal: bool = False) -> None:
        """Collect the personal strings of a stored payload: contacts anywhere, and names
        and address lines inside its customer and address dicts."""
        if isinstance(data, dict):
            for key, value in data.items():
                if key in ("email", "contact_email", "customer_email"):
                    self.add_contact(email=value)
                elif key == "phone":
                    self.add_contact(phone=value)
                elif isinstance(value, str) and _names_person(key, personal):
                    self.strings.add(value.strip())
                if isinstance(value, dict | list):
                    self.learn(value, personal or key in ADDRESS_KEYS or key == "customer")
        elif isinstance(data, list):
            for item in data:
                self.learn(item, personal)

    def needles(self) -> list[str]:
        """Strings to replace in free text, longest first (so a full name goes before a part)."""
        found = self.emails | self.phones | {s for s in self.strings if len(s.strip()) >= 2}
        return sorted(found, key=len, reverse=True)


def scrub(value, needles: list[str]):
    """``value`` without personal data: personal keys and addresses dropped, a customer kept
    only as its id, and every remaining string mentioning the person redacted."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ADDRESS_KEYS or key in PERSONAL_KEYS:
                continue
            if key == "customer" and isinstance(item, dict):
                out[key] = {"id": item.get("id"), "redacted": True}
            else:
                out[key] = scrub(item, needles)
        return out
    if isinstance(value, list):
        return [scrub(item, needles) for item in value]
    if isinstance(value, str):
        return _redact_text(value, needles)
    return value


def _redact_text(value: str, needles: list[str]) -> str:
    lowered = value.lower()
    for needle in needles:
        low = needle.lower()
        start = lowered.find(low)
        while start != -1:
            value = value[:start] + REDACTED + value[start + len(needle) :]
            lowered = value.lower()
            start = lowered.find(low, start + len(REDACTED))
    return value


def _names_person(key: str, personal: bool) -> bool:
    """Whether a string under ``key`` is a name or address line (``name`` only within a
    customer or an address: an order's ``name`` is its number)."""
    return key in ("first_name", "last_name", "address1", "address2") or (
        personal and key in ("name", "company")
    )
