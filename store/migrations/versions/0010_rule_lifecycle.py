"""rule lifecycle: rule versions, digests, cross-order cancels (issue 22)

``actions.rule_version`` is the hash of the rule definition that planned an action
and ``actions.on_disable`` what its rule said should happen to it when the rule is
switched off or removed. ``actions.cancel_on_customer`` holds the ``cancel_on`` kinds
with ``scope: customer``. ``actions.digest_key`` and ``actions.digest`` let one action
collect the events of a digest window. Existing rows keep NULL in all of them: no
version known, drained like before, order-scoped cancels only, no digest.

Revision ID: 0010_rule_lifecycle
Revises: 0009_preferences
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_rule_lifecycle"
down_revision = "0009_preferences"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("rule_version", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("on_disable", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("cancel_on_customer", JSON, nullable=True))
        batch.add_column(sa.Column("digest_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("digest", JSON, nullable=True))
        batch.create_index("ix_actions_shop_digest_key", ["shop_id", "digest_key"])
        batch.create_index("ix_actions_shop_rule_status", ["shop_id", "rule", "status"])


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_index("ix_actions_shop_rule_status")
        batch.drop_index("ix_actions_shop_digest_key")
        batch.drop_column("digest")
        batch.drop_column("digest_key")
        batch.drop_column("cancel_on_customer")
        batch.drop_column("on_disable")
        batch.drop_column("rule_version")
