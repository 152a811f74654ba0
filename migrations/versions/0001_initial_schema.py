"""Initial schema: guild settings, sessions, speaker leases, transcripts, privacy, broadcasts.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations spell their types out, so later model changes cannot rewrite history.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SNOWFLAKE = sa.BigInteger()
TIMESTAMP = sa.DateTime(timezone=True)
LANGUAGE = sa.String(length=16)
LIVE_ONLY = sa.text("status != 'ended'")


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", SNOWFLAKE, autoincrement=False, nullable=False),
        sa.Column("source_language", LANGUAGE, nullable=False),
        sa.Column("target_languages", sa.JSON(), nullable=False),
        sa.Column("transcript_channel_id", SNOWFLAKE, nullable=True),
        sa.Column("config_role_id", SNOWFLAKE, nullable=True),
        sa.Column("floor_audio_enabled", sa.Boolean(), nullable=False),
        sa.Column("floor_volume_base", sa.Float(), nullable=False),
        sa.Column("floor_volume_ducked", sa.Float(), nullable=False),
        sa.Column("auto_stop_empty_seconds", sa.Integer(), nullable=False),
        sa.Column("auto_stop_max_seconds", sa.Integer(), nullable=True),
        sa.Column("transcript_retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("auto_stop_empty_seconds >= 0", name=op.f("ck_guild_settings_auto_stop_empty_nonnegative")),
        sa.CheckConstraint(
            "floor_volume_base >= 0 AND floor_volume_base <= 2", name=op.f("ck_guild_settings_floor_volume_base_range")
        ),
        sa.CheckConstraint(
            "floor_volume_ducked >= 0 AND floor_volume_ducked <= 2",
            name=op.f("ck_guild_settings_floor_volume_ducked_range"),
        ),
        sa.CheckConstraint("transcript_retention_days >= 0", name=op.f("ck_guild_settings_retention_nonnegative")),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_settings")),
    )
    op.create_table(
        "guild_languages",
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("language", LANGUAGE, nullable=False),
        sa.Column("voice_channel_id", SNOWFLAKE, nullable=True),
        sa.Column("voice_id", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guild_settings.guild_id"],
            name=op.f("fk_guild_languages_guild_id_guild_settings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("guild_id", "language", name=op.f("pk_guild_languages")),
    )
    op.create_table(
        "interpretation_sessions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("source_channel_id", SNOWFLAKE, nullable=False),
        sa.Column("text_channel_id", SNOWFLAKE, nullable=True),
        sa.Column("source_language", LANGUAGE, nullable=False),
        sa.Column("target_languages", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_by_user_id", SNOWFLAKE, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.Column("palabra_session_ids", sa.JSON(), nullable=False),
        sa.Column("instance_id", sa.String(length=128), nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'stopping', 'ended')", name=op.f("ck_interpretation_sessions_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interpretation_sessions")),
    )
    op.create_index(op.f("ix_interpretation_sessions_guild_id"), "interpretation_sessions", ["guild_id"])
    op.create_index(op.f("ix_interpretation_sessions_instance_id"), "interpretation_sessions", ["instance_id"])
    op.create_index(
        "uq_interpretation_sessions_live_source_channel",
        "interpretation_sessions",
        ["source_channel_id"],
        unique=True,
        sqlite_where=LIVE_ONLY,
        postgresql_where=LIVE_ONLY,
    )
    op.create_table(
        "speaker_leases",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("speaker_user_id", SNOWFLAKE, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("channel_id", SNOWFLAKE, nullable=False),
        sa.Column("language", LANGUAGE, nullable=False),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("instance_id", sa.String(length=128), nullable=False),
        sa.Column("leased_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["interpretation_sessions.id"],
            name=op.f("fk_speaker_leases_session_id_interpretation_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speaker_leases")),
        sa.UniqueConstraint("guild_id", "channel_id", name=op.f("uq_speaker_leases_guild_id_channel_id")),
        sa.UniqueConstraint("session_id", "language", name=op.f("uq_speaker_leases_session_id_language")),
        sa.UniqueConstraint("speaker_user_id", "guild_id", name=op.f("uq_speaker_leases_speaker_user_id_guild_id")),
    )
    op.create_index(op.f("ix_speaker_leases_instance_id"), "speaker_leases", ["instance_id"])
    op.create_index(op.f("ix_speaker_leases_session_id"), "speaker_leases", ["session_id"])
    op.create_table(
        "transcript_lines",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("session_id", ID, nullable=False),
        sa.Column("transcription_id", sa.String(length=128), nullable=False),
        sa.Column("speaker_user_id", SNOWFLAKE, nullable=True),
        sa.Column("source_language", LANGUAGE, nullable=True),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("translations", sa.JSON(), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=True),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["interpretation_sessions.id"],
            name=op.f("fk_transcript_lines_session_id_interpretation_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_lines")),
        sa.UniqueConstraint(
            "session_id", "transcription_id", name=op.f("uq_transcript_lines_session_id_transcription_id")
        ),
    )
    op.create_index(op.f("ix_transcript_lines_created_at"), "transcript_lines", ["created_at"])
    op.create_index(op.f("ix_transcript_lines_session_id"), "transcript_lines", ["session_id"])
    op.create_index(op.f("ix_transcript_lines_speaker_user_id"), "transcript_lines", ["speaker_user_id"])
    op.create_table(
        "privacy_optouts",
        sa.Column("user_id", SNOWFLAKE, autoincrement=False, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, autoincrement=False, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "guild_id", name=op.f("pk_privacy_optouts")),
    )
    op.create_index("ix_privacy_optouts_guild_id", "privacy_optouts", ["guild_id"])
    op.create_table(
        "broadcasts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("palabra_broadcast_id", sa.String(length=128), nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("creator_user_id", SNOWFLAKE, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("announce_channel_id", SNOWFLAKE, nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
        sa.UniqueConstraint("palabra_broadcast_id", name=op.f("uq_broadcasts_palabra_broadcast_id")),
    )
    op.create_index(op.f("ix_broadcasts_guild_id"), "broadcasts", ["guild_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints with it.
    for table in (
        "broadcasts",
        "privacy_optouts",
        "transcript_lines",
        "speaker_leases",
        "interpretation_sessions",
        "guild_languages",
        "guild_settings",
    ):
        op.drop_table(table)
