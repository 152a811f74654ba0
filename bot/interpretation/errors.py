"""Errors the interpretation layer raises on purpose; `user_message` is safe to show in Discord."""

from __future__ import annotations

from bot.errors import UserFacingError


class InterpretationError(UserFacingError):
    """Base: `user_message` says what went wrong and what to do, without internals or secrets."""

    default_message = "Interpretation failed."


class NotInVoiceChannel(InterpretationError):
    default_message = "Join a voice channel first, then run the command again."


class SessionAlreadyRunning(InterpretationError):
    default_message = "Interpretation is already running in that channel."


class NoActiveSession(InterpretationError):
    default_message = "No interpretation session is running here."


class PalabraUnavailable(InterpretationError):
    default_message = "The translation service is unavailable right now; try again in a minute."


class BotMissingPermissions(InterpretationError):
    default_message = "The bot lacks the permissions it needs in that channel."


class InvalidLanguages(InterpretationError):
    default_message = "Those languages are not supported; see /languages."


class VoiceUnavailable(InterpretationError):
    default_message = "The bot could not join the voice channel; check its permissions and try again."


class VoiceConnectTimeout(VoiceUnavailable):
    default_message = (
        "The bot could not join the voice channel in time: Discord's voice server did not complete the "
        "connection. Try again in a minute."
    )


class DatabaseProblem(InterpretationError):
    default_message = (
        "The bot's database is not answering, so interpretation was not started; try again in a minute, "
        "and tell the bot's operator if it keeps happening."
    )


class ShuttingDown(InterpretationError):
    default_message = "The bot is shutting down (it restarts shortly); start the interpretation again in a minute."


class StillStarting(InterpretationError):
    """Not an error for the user: a stop asked while the session is still being started."""

    default_message = "The interpretation is still starting; it will stop as soon as it has started."
