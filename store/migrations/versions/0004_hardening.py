"""hardening: widen text columns that real payloads overflow

A WooCommerce billing phone such as ``+381 (0)64 123-4567 / +381 (0)11 222-3344``
(41 characters) overflowed ``customers.phone varchar(32)`` on PostgreSQL and
dead-lettered the delivery. Columns filled from platform payloads get room for
real data; values still longer are truncated (with a warning) by
``store.sanitize.fit_row`` before they reach the database.

Revision ID: 0004_hardening
Revises: 0003_customer_history
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_hardening"
down_revision = "0003_customer_history"
branch_labels = None
depends_on = None

# (table, column, old length, new length)
WIDENED = [
    ("shops", "locale", 16, 35),
    ("customers", "phone", 32, 64),
    ("customers", "locale", 16, 35),
    ("order_states", "order_ref", 64, 128),
    ("events", "order_ref", 64, 128),
    ("events", "fulfillment_ref", 64, 128),
    ("actions", "order_ref", 64, 128),
    ("actions", "fulfillment_ref", 64, 128),
]


def _alter(to_new: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    tables: dict[str, list[tuple[str, int, int]]] = {}
    for table, column, old, new in WIDENED:
        tables.setdefault(table, []).append((column, old, new))
    for table, columns in tables.items():
        with op.batch_alter_table(table) as batch:
            for column, old, new in columns:
                src, dst = (old, new) if to_new else (new, old)
                kwargs = {}
                if postgres and not to_new:
                    # narrowing fails on longer values; keep their head instead
                    kwargs["postgresql_using"] = f'left("{column}", {dst})'
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=src),
                    type_=sa.String(length=dst),
                    existing_nullable=(table, column) != ("order_states", "order_ref"),
                    **kwargs,
                )


def upgrade() -> None:
    _alter(True)


def downgrade() -> None:
    _alter(False)
