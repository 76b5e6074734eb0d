"""A database error never puts customer data in a log line or a stored error.

Probed before: a refused customer row logged its SQL parameters (email, phone,
last name) 15 times and stored them in ``deliveries.error``. PostgreSQL's own
``DETAIL: Failing row contains (...)`` repeats every value of the row, so
hiding SQLAlchemy's parameters alone is not enough.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from aftersale.core.logs import describe_error, scrub
from aftersale.store.tables import deliveries
from tests.conftest import SHOPIFY_SECRET
from tests.helpers import fixture_bytes, post_shopify, rows

EMAIL = "planted.person@example.org"
PHONE = "+381 64 999 8877"
LAST_NAME = "Zzyzxplanted"


def test_scrub_removes_values_drivers_quote():
    raw = (
        '(psycopg.errors.CheckViolation) new row for relation "customers" violates check\n'
        f"DETAIL:  Failing row contains (1, 7, {EMAIL}, {PHONE}, Ana, {LAST_NAME}).\n"
        f"[SQL: INSERT INTO customers ...]\n[parameters: {{'email': '{EMAIL}'}}]\n"
        f'invalid input syntax for type integer: "{LAST_NAME}" mail {EMAIL} tel {PHONE}'
    )
    cleaned = scrub(raw)
    for planted in (EMAIL, PHONE, LAST_NAME):
        assert planted not in cleaned
    assert "p***@example.org" in cleaned and "***77" in cleaned
    assert "CheckViolation" in describe_error(ValueError(raw))


@pytest.mark.postgres_only
def test_a_refused_customer_row_leaves_no_pii_in_logs_or_the_inbox(client, work, runtime, capfd):
    order = json.loads(fixture_bytes("shopify", "orders__create"))
    order["email"] = order["contact_email"] = order["customer"]["email"] = EMAIL
    order["phone"] = order["customer"]["phone"] = PHONE
    order["customer"]["last_name"] = order["billing_address"]["last_name"] = LAST_NAME
    with runtime.engine.begin() as conn:
        conn.execute(
            text("ALTER TABLE customers ADD CONSTRAINT planted_refusal CHECK (email NOT LIKE 'p%')")
        )
    try:
        capfd.readouterr()
        assert post_shopify(client, "orders/create", order, SHOPIFY_SECRET).status_code == 200
        work()
        logged = capfd.readouterr()
    finally:
        with runtime.engine.begin() as conn:
            conn.execute(text("ALTER TABLE customers DROP CONSTRAINT planted_refusal"))
    (delivery,) = rows(runtime.engine, deliveries)
    assert delivery.status == "pending" and delivery.attempts == 1  # failed once, will retry
    assert "CheckViolation" in delivery.error
    output = logged.out + logged.err
    assert "delivery.processing_failed" in output
    for planted in (EMAIL, PHONE, LAST_NAME):
        assert planted not in output, f"{planted} logged"
        assert planted not in delivery.error, f"{planted} stored"
