"""Shard instances: the bot processes sharing one database, the shards each runs, their heartbeat.

Revision ID: shard_instances_c11
Revises: ovl1_stored_secrets
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "shard_instances_c11"
down_revision: str | None = "ovl1_stored_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("shard_ids", sa.JSON(), nullable=False),
        sa.Column("shard_count", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("shard_count >= 1", name=op.f("ck_instances_shard_count_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )


def downgrade() -> None:
    op.drop_table("instances")
