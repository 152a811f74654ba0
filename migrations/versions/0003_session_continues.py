"""Resumed sessions name the sessions they continue (caption overlay links follow them).

Revision ID: session_continues_d4
Revises: shard_instances_c11
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "session_continues_d4"
down_revision: str | None = "shard_instances_c11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows continue nothing. The server default stays: a process of the previous version (a
    # rolling upgrade of shards) inserts rows without the column, and they must not fail.
    with op.batch_alter_table("interpretation_sessions") as batch:
        batch.add_column(sa.Column("continues_session_ids", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("interpretation_sessions") as batch:
        batch.drop_column("continues_session_ids")
