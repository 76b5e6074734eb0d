"""reconciliation: per-shop sync cursors and runs, and where a delivery came from (issue 24)

Webhooks get lost (WooCommerce never retries and disables a webhook on the 7th
failure; Shopify drops failing subscriptions). A periodic job asks the platform
for orders changed since ``shop_syncs.cursor`` and feeds them through the same
normalization as webhooks; the cursor advances only after a page is processed,
so a crash resumes where it stopped. ``deliveries.source`` marks what a
reconcile or backfill run stored (NULL: a webhook).

Revision ID: 0012_reconcile
Revises: 0011_observability
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_reconcile"
down_revision = "0011_observability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=True))
    op.create_table(
        "shop_syncs",
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column(
            "summary", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_shop_syncs_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "kind", name=op.f("pk_shop_syncs")),
    )


def downgrade() -> None:
    op.drop_table("shop_syncs")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("source")
