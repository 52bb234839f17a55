"""typed provider credentials, SUBMITTING tasks, upstream state per task

Channels gain `credential_type` (key | pair | pool). Existing rows are migrated in place: an
encrypted credential written before types existed is one API key, so those rows become `key`
(the ciphertext stays as it is; domain/credentials.py reads a `key` plaintext as the bare key).
Tasks gain the SUBMITTING status (exactly-once submit), `key_index` (which key of a pool the task
was submitted with: polls use the same one) and `upstream_state` (JSON: what the adapter needs
to poll, e.g. Jimeng's req_key).

Revision ID: 0004
Revises: 0005 (the newest on this branch when written)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OLD = "status IN ('CREATED', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')"
_NEW = (
    "status IN ('CREATED', 'SUBMITTING', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')"
)


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_type", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE channels SET credential_type = 'key'"
        " WHERE credential_enc IS NOT NULL AND credential_type IS NULL"
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_index", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("upstream_state", sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_tasks_status"), sa.text(_NEW))


def downgrade() -> None:
    op.execute("UPDATE tasks SET status = 'CREATED' WHERE status = 'SUBMITTING'")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_tasks_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_tasks_status"), sa.text(_OLD))
        batch_op.drop_column("upstream_state")
        batch_op.drop_column("key_index")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("credential_type")
