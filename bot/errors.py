"""Root of the project's own exceptions; each external system has its own subtree.

What users are told has one contract: an error raised with a message for them is a `UserFacingError`
and carries it in `user_message` (safe to show in Discord: no internals, no secrets). The Discord
client shows that text; any other error becomes a logged reference id.
"""

from __future__ import annotations


class BotError(Exception):
    """Base for every error this project raises on purpose."""


class UserFacingError(BotError):
    """An error whose `user_message` says what went wrong and what to do; subclasses set a
    `default_message` for when none is given."""

    default_message = "That did not work; please try again."

    def __init__(self, user_message: str | None = None) -> None:
        self.user_message: str = user_message or self.default_message
        super().__init__(self.user_message)


class ConfigurationError(BotError):
    """Settings are missing or invalid; the message says which and what is accepted."""
