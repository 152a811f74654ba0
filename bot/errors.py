"""Root of the project's own exceptions; each external system has its own subtree."""


class BotError(Exception):
    """Base for every error this project raises on purpose."""


class ConfigurationError(BotError):
    """Settings are missing or invalid; the message says which and what is accepted."""
