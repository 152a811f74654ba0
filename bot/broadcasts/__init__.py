"""Palabra broadcasts run from Discord: validation of `/broadcast` options, the guild-scoped service
and the status poller."""
