"""reconciliation: per-shop cursors and runs (issue 24)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0012_reconcile
Revises: 0011_observability
Create Date: 2026-11-30
"""

revision = "0012_reconcile"
down_revision = "0011_observability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
