"""observability: why-not records and worker heartbeats (issue 23)

Placeholder in the migration chain, filled by the work on that issue.

Revision ID: 0011_observability
Revises: 0010_rule_lifecycle
Create Date: 2026-11-30
"""

revision = "0011_observability"
down_revision = "0010_rule_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
