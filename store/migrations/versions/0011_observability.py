"""observability: why-not records (issue 23)

For every event, each rule listening to its kind that did not match is kept
as one short row: the first failing check and the value it saw (customer
fields masked). ``aftersale actions show`` shows them beside what did happen;
the scheduler deletes rows older than RULE_MISS_DAYS. Worker heartbeats live
in Redis with a time-to-live, not here.

Revision ID: 0011_observability
Revises: 0010_rule_lifecycle
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_observability"
down_revision = "0010_rule_lifecycle"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rule_misses",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("shop_id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("failed_check", sa.String(length=500), nullable=False),
        sa.Column("actual", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_rule_misses_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_rule_misses_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_misses")),
    )
    op.create_index("ix_rule_misses_event_id", "rule_misses", ["event_id"])
    op.create_index("ix_rule_misses_created_at", "rule_misses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_rule_misses_created_at", table_name="rule_misses")
    op.drop_index("ix_rule_misses_event_id", table_name="rule_misses")
    op.drop_table("rule_misses")
