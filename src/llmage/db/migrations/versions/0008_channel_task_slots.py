"""index for counting a channel's tasks running upstream

A channel's `max_concurrency` option caps the tasks it runs upstream at once; the poller counts
them (status SUBMITTING, PENDING, RUNNING on the channel) in the transaction that claims a slot.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_channel_status", "tasks", ["channel_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_tasks_channel_status", table_name="tasks")
