"""preferences: per-category marketing choices of a customer (issue 21)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0009_preferences
Revises: 0008_shipment_tracking
Create Date: 2026-11-30
"""

revision = "0009_preferences"
down_revision = "0008_shipment_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
