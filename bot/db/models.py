"""The schema: SQLAlchemy 2 typed declarative models.

Discord ids are 64-bit (BigInteger); every datetime is timezone-aware UTC (see `UTCDateTime`).
Changing a model needs a new Alembic revision in `migrations/versions/` (the test suite checks that
the migrated schema and these models agree).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.db.types import BigIntId, Snowflake, UTCDateTime, utcnow

# Explicit constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LANGUAGE_CODE_LENGTH = 16

# Interpretation session statuses: a session is "live" until it is ended.
SESSION_ACTIVE = "active"
SESSION_STOPPING = "stopping"
SESSION_ENDED = "ended"
SESSION_STATUSES = (SESSION_ACTIVE, SESSION_STOPPING, SESSION_ENDED)
LIVE_STATUSES = (SESSION_ACTIVE, SESSION_STOPPING)

# Guild setting defaults (also the values for guilds that never configured anything).
DEFAULT_SOURCE_LANGUAGE = "auto"
DEFAULT_FLOOR_VOLUME_BASE = 0.25
DEFAULT_FLOOR_VOLUME_DUCKED = 0.08
DEFAULT_AUTO_STOP_EMPTY_SECONDS = 300
DEFAULT_AUTO_STOP_MAX_SECONDS = 4 * 3600
DEFAULT_TRANSCRIPT_RETENTION_DAYS = 30

# The privacy row that applies to every guild.
GLOBAL_SCOPE = 0


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[int]: JSON,
        datetime: UTCDateTime,
    }


class Instance(Base):
    """A running bot process and the gateway shards it serves, kept alive by its heartbeat.

    Sessions and speaker leases name their instance (`instance_id`); when an instance falls silent,
    the process that next starts on its shards takes those sessions over. A clean shutdown deletes
    the row.
    """

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    shard_ids: Mapped[list[int]] = mapped_column(default=list)
    shard_count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("shard_count >= 1", name="shard_count_positive"),)


class GuildSettings(Base):
    """Per-guild defaults used by `/interpret start` and the `/setup` commands."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    source_language: Mapped[str] = mapped_column(String(LANGUAGE_CODE_LENGTH), default=DEFAULT_SOURCE_LANGUAGE)
    target_languages: Mapped[list[str]] = mapped_column(default=list)
    transcript_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    config_role_id: Mapped[int | None] = mapped_column(Snowflake)
    floor_audio_enabled: Mapped[bool] = mapped_column(default=False)
    floor_volume_base: Mapped[float] = mapped_column(Float, default=DEFAULT_FLOOR_VOLUME_BASE)
    floor_volume_ducked: Mapped[float] = mapped_column(Float, default=DEFAULT_FLOOR_VOLUME_DUCKED)
    auto_stop_empty_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_AUTO_STOP_EMPTY_SECONDS)
    # None = no maximum.
    auto_stop_max_seconds: Mapped[int | None] = mapped_column(Integer, default=DEFAULT_AUTO_STOP_MAX_SECONDS)
    transcript_retention_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_TRANSCRIPT_RETENTION_DAYS)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    languages: Mapped[list[GuildLanguage]] = relationship(
        back_populates="guild", cascade="all, delete-orphan", lazy="selectin", order_by="GuildLanguage.language"
    )

    __table_args__ = (
        CheckConstraint("floor_volume_base >= 0 AND floor_volume_base <= 2", name="floor_volume_base_range"),
        CheckConstraint("floor_volume_ducked >= 0 AND floor_volume_ducked <= 2", name="floor_volume_ducked_range"),
        CheckConstraint("auto_stop_empty_seconds >= 0", name="auto_stop_empty_nonnegative"),
        CheckConstraint("transcript_retention_days >= 0", name="retention_nonnegative"),
    )

    @property
    def sibling_channels(self) -> dict[str, int]:
        """Target language -> the voice channel where it is heard (languages without one are left out)."""
        return {row.language: row.voice_channel_id for row in self.languages if row.voice_channel_id is not None}

    @property
    def voices(self) -> dict[str, str]:
        """Target language -> Palabra voice id (languages without a chosen voice are left out)."""
        return {row.language: row.voice_id for row in self.languages if row.voice_id is not None}


class GuildLanguage(Base):
    """Per-guild, per-language choices: the sibling voice channel and the Palabra voice."""

    __tablename__ = "guild_languages"

    guild_id: Mapped[int] = mapped_column(
        Snowflake, ForeignKey("guild_settings.guild_id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(LANGUAGE_CODE_LENGTH), primary_key=True)
    voice_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    voice_id: Mapped[str | None] = mapped_column(String(128))

    guild: Mapped[GuildSettings] = relationship(back_populates="languages")


class InterpretationSession(Base):
    """One interpretation of one source voice channel, from start to end.

    `instance_id` names the process that owns it: when that process dies, its sessions are closed by
    the next start (crash recovery) and the Palabra sessions listed in `palabra_session_ids` deleted.
    A session the next start resumes lists the crashed one in `continues_session_ids` (with what that one
    continued, newest first): caption overlay links to any of them follow it.
    """

    __tablename__ = "interpretation_sessions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, index=True)
    source_channel_id: Mapped[int] = mapped_column(Snowflake)
    text_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    source_language: Mapped[str] = mapped_column(String(LANGUAGE_CODE_LENGTH))
    target_languages: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default=SESSION_ACTIVE)
    started_by_user_id: Mapped[int | None] = mapped_column(Snowflake)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))
    palabra_session_ids: Mapped[list[str]] = mapped_column(default=list)
    # The server default lets a process of the previous version (a rolling upgrade) insert rows.
    continues_session_ids: Mapped[list[int]] = mapped_column(default=list, server_default="[]")
    instance_id: Mapped[str] = mapped_column(String(128), index=True)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("status IN ('active', 'stopping', 'ended')", name="status_known"),
        # At most one live (not ended) session per source channel.
        Index(
            "uq_interpretation_sessions_live_source_channel",
            "source_channel_id",
            unique=True,
            sqlite_where=text("status != 'ended'"),
            postgresql_where=text("status != 'ended'"),
        ),
    )

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class SpeakerLease(Base):
    """A speaker bot lent to a session to play one language into one channel.

    A bot account can be in one voice channel per guild, so a speaker has at most one lease per guild
    (it may serve other guilds at the same time); a channel has at most one speaker; a session has at
    most one speaker per language.
    """

    __tablename__ = "speaker_leases"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    speaker_user_id: Mapped[int] = mapped_column(Snowflake)
    guild_id: Mapped[int] = mapped_column(Snowflake)
    channel_id: Mapped[int] = mapped_column(Snowflake)
    language: Mapped[str] = mapped_column(String(LANGUAGE_CODE_LENGTH))
    session_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("interpretation_sessions.id", ondelete="CASCADE"), index=True
    )
    instance_id: Mapped[str] = mapped_column(String(128), index=True)
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("speaker_user_id", "guild_id"),
        UniqueConstraint("guild_id", "channel_id"),
        UniqueConstraint("session_id", "language"),
    )


class TranscriptLine(Base):
    """One transcribed utterance and its translations; purged after the guild's retention period."""

    __tablename__ = "transcript_lines"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("interpretation_sessions.id", ondelete="CASCADE"), index=True
    )
    transcription_id: Mapped[str] = mapped_column(String(128))
    speaker_user_id: Mapped[int | None] = mapped_column(Snowflake, index=True)
    source_language: Mapped[str | None] = mapped_column(String(LANGUAGE_CODE_LENGTH))
    source_text: Mapped[str] = mapped_column(Text, default="")
    translations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Seconds from the start of the session's audio stream, as Palabra reports them.
    start_time: Mapped[float | None] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("session_id", "transcription_id"),)


class PrivacyOptOut(Base):
    """A user who does not want their voice interpreted: in one guild, or everywhere (guild_id 0)."""

    __tablename__ = "privacy_optouts"

    user_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(Snowflake, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_privacy_optouts_guild_id", "guild_id"),)

    @property
    def is_global(self) -> bool:
        return self.guild_id == GLOBAL_SCOPE


class Broadcast(Base):
    """A Palabra broadcast created from a guild; only that guild may see or change it."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    palabra_broadcast_id: Mapped[str] = mapped_column(String(128), unique=True)
    guild_id: Mapped[int] = mapped_column(Snowflake, index=True)
    creator_user_id: Mapped[int] = mapped_column(Snowflake)
    title: Mapped[str] = mapped_column(String(200))
    announce_channel_id: Mapped[int | None] = mapped_column(Snowflake)
    status: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StoredSecret(Base):
    """A secret the bot generated for itself and must keep across restarts (e.g. the overlay's signing key).

    Only for secrets that have no setting of their own: a configured one always wins and is never stored.
    """

    __tablename__ = "stored_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
