"""admin overrides of the catalog: models switched off or repriced

One row per overridden llmid: `enabled`, and `price` (JSON, micro-units) laid over the catalog
file's price at load.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_overrides",
        sa.Column("llmid", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("price", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name="fk_model_overrides_updated_by_users"
        ),
        sa.PrimaryKeyConstraint("llmid", name="pk_model_overrides"),
    )


def downgrade() -> None:
    op.drop_table("model_overrides")
