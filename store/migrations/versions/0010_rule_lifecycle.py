"""rule lifecycle: rule versions, digests, cross-order cancels (issue 22)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0010_rule_lifecycle
Revises: 0009_preferences
Create Date: 2026-11-30
"""

revision = "0010_rule_lifecycle"
down_revision = "0009_preferences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
