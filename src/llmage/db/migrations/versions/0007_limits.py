"""limits on keys and users; media retention marker on tasks

Rate and concurrency limits (NULL: unlimited) with per-model overrides as JSON, on users and
API keys; `tasks.media_expired_at` set when retention deleted a task's stored files; indexes
for counting a user's or key's open tasks and for finding finished tasks by age.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_LIMIT_COLUMNS = ("rpm_limit", "tpm_limit", "concurrency_limit", "task_limit")


def upgrade() -> None:
    for table in ("users", "api_keys"):
        for name in _LIMIT_COLUMNS:
            op.add_column(table, sa.Column(name, sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("model_limits", sa.Text(), nullable=True))
    op.add_column("tasks", sa.Column("media_expired_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_tasks_user_status", "tasks", ["user_id", "status"])
    op.create_index("ix_tasks_key_status", "tasks", ["key_id", "status"])
    op.create_index("ix_tasks_finished", "tasks", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_finished", table_name="tasks")
    op.drop_index("ix_tasks_key_status", table_name="tasks")
    op.drop_index("ix_tasks_user_status", table_name="tasks")
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of `users` would have to drop a table
    # other tables' foreign keys point at.
    op.drop_column("tasks", "media_expired_at")
    for table in ("users", "api_keys"):
        for name in (*_LIMIT_COLUMNS, "model_limits"):
            op.drop_column(table, name)
