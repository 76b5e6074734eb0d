"""consumed tokens: single-use tokens already spent

The WooCommerce key exchange's ``user_id`` token was valid for an hour and
could be posted again in that hour with another key, replacing the store's
consumer key. A token is now recorded (as a SHA-256 digest) when it is used,
in the database so that every web process sees it; a second use is refused.
``expires_at`` is when the token stops being valid anyway, so rows past it
can be deleted.

Revision ID: 0005_consumed_tokens
Revises: 0004_hardening
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_consumed_tokens"
down_revision = "0004_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumed_tokens",
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purpose", "digest", name=op.f("pk_consumed_tokens")),
    )
    op.create_index("ix_consumed_tokens_expires_at", "consumed_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_consumed_tokens_expires_at", table_name="consumed_tokens")
    op.drop_table("consumed_tokens")
