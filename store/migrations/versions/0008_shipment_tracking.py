"""shipment tracking: estimated delivery per parcel (issue 20)

``delivery_estimates`` holds, per parcel of a shop whose settings estimate
delivery (``delivery.estimated_delivery`` in settings.yaml), when the
scheduler takes it as delivered unless a real signal comes first. Per-tracking
shipment statuses need no table: they live in the order's state
(``order_states.extra["fulfillments"]``).

Revision ID: 0008_shipment_tracking
Revises: 0007_shop_tokens
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_shipment_tracking"
down_revision = "0007_shop_tokens"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_estimates",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("shop_id", ID, nullable=False),
        sa.Column("order_ref", sa.String(length=128), nullable=False),
        sa.Column("fulfillment_ref", sa.String(length=128), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_delivery_estimates_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_estimates")),
        sa.UniqueConstraint(
            "shop_id", "fulfillment_ref", name=op.f("uq_delivery_estimates_shop_parcel")
        ),
    )
    op.create_index("ix_delivery_estimates_status_due", "delivery_estimates", ["status", "due_at"])
    op.create_index(
        "ix_delivery_estimates_shop_order", "delivery_estimates", ["shop_id", "order_ref"]
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_estimates_shop_order", table_name="delivery_estimates")
    op.drop_index("ix_delivery_estimates_status_due", table_name="delivery_estimates")
    op.drop_table("delivery_estimates")
