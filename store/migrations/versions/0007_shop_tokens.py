"""shop tokens: expiring Shopify access tokens and shop bookkeeping (issue 18)

The tokens themselves (access token, its expiry, the rotated refresh token, a
client-credentials app's secret) stay in the encrypted ``shops.credentials``;
these columns hold what ``aftersale shops list`` shows without decrypting
anything:

- ``installed_at``: when the shop last granted Aftersale access (install link,
  ``shops add-shopify`` or ``shops add-woocommerce``).
- ``webhooks_checked_at`` / ``webhooks_error``: when its webhooks were last
  registered or listed, and what was wrong then (NULL: healthy).
- ``access_error``: the platform refused to renew its token; cleared by the
  next install. The shop needs installing again.

Revision ID: 0007_shop_tokens
Revises: 0006_body_hash
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_shop_tokens"
down_revision = "0006_body_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("installed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("webhooks_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("webhooks_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("access_error", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("access_error")
        batch.drop_column("webhooks_error")
        batch.drop_column("webhooks_checked_at")
        batch.drop_column("installed_at")
