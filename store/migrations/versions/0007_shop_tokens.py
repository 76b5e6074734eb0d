"""shop tokens: expiring Shopify access tokens and shop bookkeeping (issue 18)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0007_shop_tokens
Revises: 0006_body_hash
Create Date: 2026-11-30
"""

revision = "0007_shop_tokens"
down_revision = "0006_body_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
