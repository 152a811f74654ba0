"""Errors raised by the database layer; each message is written for the person who has to act on it."""

from __future__ import annotations

from bot.errors import BotError, ConfigurationError, UserFacingError


class DatabaseError(BotError):
    """Base for the database layer's own errors."""


class DatabaseUnavailable(ConfigurationError, DatabaseError):
    """DATABASE_URL is malformed or the database cannot be reached (the URL in the message is redacted)."""


class InvalidSetting(DatabaseError, UserFacingError, ValueError):
    """A guild setting name or value was rejected; the message says what is accepted."""


class SessionAlreadyActive(DatabaseError):
    """The source voice channel already has a session that has not ended."""

    def __init__(self, source_channel_id: int) -> None:
        super().__init__(f"voice channel {source_channel_id} already has an active interpretation session")
        self.source_channel_id = source_channel_id


class NotFound(DatabaseError, LookupError):
    """The row does not exist, or belongs to another guild (ownership checks look the same as absence)."""
