"""customer history: index events by customer

Rules may ask about a customer's earlier orders (``customer.orders_count``,
``customer.has_purchased``); those facts are read from the stored
``order.created`` events of the customer, which needs this index.

Revision ID: 0003_customer_history
Revises: 0002_lifecycle
Create Date: 2026-11-24
"""
from alembic import op

revision = "0003_customer_history"
down_revision = "0002_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.create_index("ix_events_shop_customer_kind", ["shop_id", "customer_ref", "kind"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_shop_customer_kind")
