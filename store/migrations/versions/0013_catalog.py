"""catalog: products, order lines, the goes-with model and repurchase cycles (issue 25)

``products`` is each shop's catalog (product webhooks and ``aftersale catalog
sync``); ``order_lines`` keeps one row per order and product from every stored
order, so the co-purchase statistics (``product_stats``, ``product_pairs``) and
the repurchase cycles (``repurchase_cycles``) are counted by the database.

Revision ID: 0013_catalog
Revises: 0012_reconcile
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013_catalog"
down_revision = "0012_reconcile"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _shop(table: str) -> list:
    return [
        sa.Column("shop_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f(f"fk_{table}_shop_id_shops"), ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "products",
        *_shop("products"),
        sa.Column("product_ref", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("handle", sa.String(length=255), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("image_url", sa.String(length=2000), nullable=True),
        sa.Column("image_alt", sa.String(length=500), nullable=True),
        sa.Column("price", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("product_type", sa.String(length=255), nullable=True),
        sa.Column("categories", JSON, nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "product_ref", name=op.f("pk_products")),
    )
    op.create_table(
        "order_lines",
        *_shop("order_lines"),
        sa.Column("order_ref", sa.String(length=128), nullable=False),
        sa.Column("product_ref", sa.String(length=128), nullable=False),
        sa.Column("customer_ref", sa.String(length=128), nullable=True),
        sa.Column("product_type", sa.String(length=255), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ordered_epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "order_ref", "product_ref", name=op.f("pk_order_lines")),
    )
    op.create_index("ix_order_lines_shop_customer", "order_lines", ["shop_id", "customer_ref"])
    op.create_index("ix_order_lines_shop_product", "order_lines", ["shop_id", "product_ref"])
    op.create_table(
        "product_stats",
        *_shop("product_stats"),
        sa.Column("product_ref", sa.String(length=128), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("product_type", sa.String(length=255), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "product_ref", name=op.f("pk_product_stats")),
    )
    op.create_index("ix_product_stats_shop_orders", "product_stats", ["shop_id", "orders"])
    op.create_index(
        "ix_product_stats_shop_type_orders", "product_stats", ["shop_id", "product_type", "orders"]
    )
    op.create_table(
        "product_pairs",
        *_shop("product_pairs"),
        sa.Column("product_ref", sa.String(length=128), nullable=False),
        sa.Column("other_ref", sa.String(length=128), nullable=False),
        sa.Column("together", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("lift", sa.Float(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "shop_id", "product_ref", "other_ref", name=op.f("pk_product_pairs")
        ),
    )
    op.create_table(
        "repurchase_cycles",
        *_shop("repurchase_cycles"),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=False),
        sa.Column("median_days", sa.Float(), nullable=False),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "scope", "ref", name=op.f("pk_repurchase_cycles")),
    )


def downgrade() -> None:
    op.drop_table("repurchase_cycles")
    op.drop_table("product_pairs")
    op.drop_index("ix_product_stats_shop_type_orders", table_name="product_stats")
    op.drop_index("ix_product_stats_shop_orders", table_name="product_stats")
    op.drop_table("product_stats")
    op.drop_index("ix_order_lines_shop_product", table_name="order_lines")
    op.drop_index("ix_order_lines_shop_customer", table_name="order_lines")
    op.drop_table("order_lines")
    op.drop_table("products")
