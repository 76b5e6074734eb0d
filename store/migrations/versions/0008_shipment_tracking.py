"""shipment tracking: per-tracking-number status and estimated delivery (issue 20)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0008_shipment_tracking
Revises: 0007_shop_tokens
Create Date: 2026-11-30
"""

revision = "0008_shipment_tracking"
down_revision = "0007_shop_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
