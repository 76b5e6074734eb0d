"""lifecycle: index actions by event

Later steps of a rule look up the earlier steps planned for the same event
(a discount code an email uses), and ``aftersale actions show`` walks from an
event to its actions; both need ``actions.event_id`` indexed.

Revision ID: 0002_lifecycle
Revises: 0001
Create Date: 2026-11-24
"""
from alembic import op

revision = "0002_lifecycle"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.create_index("ix_actions_event_id", ["event_id"])


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_index("ix_actions_event_id")
