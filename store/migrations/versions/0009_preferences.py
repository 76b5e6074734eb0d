"""preferences: per-category marketing choices of a customer (issue 21)

``preferences`` keeps what a customer chose on the preference page: one row per
shop, customer and marketing sub-category, muted or kept, with when and where
the choice was made. ``actions.subcategory`` is the sub-category an action was
planned under, so a choice made after planning still applies when it is due.
Existing marketing actions keep NULL there; the worker then asks their rule.

Revision ID: 0009_preferences
Revises: 0008_shipment_tracking
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_preferences"
down_revision = "0008_shipment_tracking"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("subcategory", sa.String(length=32), nullable=True))
    op.create_table(
        "preferences",
        sa.Column("shop_id", ID, nullable=False),
        sa.Column("customer_ref", sa.String(length=128), nullable=False),
        sa.Column("subcategory", sa.String(length=32), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_preferences_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "shop_id", "customer_ref", "subcategory", name=op.f("pk_preferences")
        ),
    )


def downgrade() -> None:
    op.drop_table("preferences")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("subcategory")
