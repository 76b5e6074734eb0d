"""body hash: a second dedupe key for deliveries; marketing consent per channel

Shopify signs only the body, with one app secret for every shop: a captured
delivery re-sent with a new ``X-Shopify-Webhook-Id`` was stored and processed
again. ``deliveries.body_hash`` (SHA-256 of the body) is unique per shop and
topic, so the same body is stored once whatever its headers say.

``customer_consents`` keeps each customer's email and SMS consent (state,
opt-in level, when it changed) as Shopify's consent webhooks report it, so an
older update arriving late never overwrites a newer one.

Revision ID: 0006_body_hash
Revises: 0005_consumed_tokens
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_body_hash"
down_revision = "0005_consumed_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(
            "uq_deliveries_shop_topic_body_hash", ["shop_id", "topic", "body_hash"]
        )
    op.create_table(
        "customer_consents",
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_ref", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("opt_in_level", sa.String(length=32), nullable=True),
        sa.Column("consent_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_customer_consents_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "shop_id", "customer_ref", "channel", name=op.f("pk_customer_consents")
        ),
    )


def downgrade() -> None:
    op.drop_table("customer_consents")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_shop_topic_body_hash", type_="unique")
        batch.drop_column("body_hash")
