"""One exception hierarchy for everything Palabra: callers catch meaningful errors, not httpx's.

Every class carries a `user_message`: what a Discord user or a CLI user is told, in one line, without
internals or account details. Each distinct cause (credentials refused, out of balance, the
parallel-session limit, an outage, a rejected language) has its own class and its own message.
"""

from __future__ import annotations

from typing import Any

from bot.errors import BotError

LANGUAGES_HINT = "see /languages for the supported codes"


class PalabraError(BotError):
    """Base of every Palabra failure."""

    user_message: str = "The translation service (Palabra) is unavailable right now; try again in a minute."


# --- REST ---------------------------------------------------------------------------------------
class PalabraAPIError(PalabraError):
    """The REST API answered with an error envelope (`{"ok": false, "errors": [...]}`) or status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.errors = errors or []


class AuthenticationError(PalabraAPIError):
    """Credentials rejected (401/403/404 on session creation, 403 at the WebSocket upgrade)."""

    user_message = "The translation service (Palabra) refused the bot's credentials; ask the bot's operator."


class InsufficientBalanceError(PalabraAPIError):
    """The account is out of balance or quota (error_code 100050, "Insufficient balance")."""

    user_message = (
        "The translation service (Palabra) account behind this bot is out of balance; ask the bot's operator."
    )


class ParallelSessionLimitError(PalabraAPIError):
    """The account's plan allows no more parallel sessions ("Parallel sessions limit reached")."""

    user_message = (
        "The translation service (Palabra) account behind this bot has reached its limit of parallel sessions; "
        "stop another interpretation or ask the bot's operator to raise the limit."
    )


class NotFoundError(PalabraAPIError):
    """The session or broadcast does not exist (any more)."""


class InvalidRequestError(PalabraAPIError):
    """Palabra rejected what we sent (HTTP 400/422, or `VALIDATION_ERROR` over the WebSocket)."""

    user_message = "The translation service (Palabra) rejected the request; ask the bot's operator to check the logs."


class RateLimitedError(PalabraAPIError):
    """HTTP 429 after our retries; `retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        wait = f"{retry_after:.0f} s" if retry_after else "a minute"
        self.user_message = f"The translation service (Palabra) is rate limiting the bot; try again in {wait}."


class ServerError(PalabraAPIError):
    """5xx after our retries."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        status = f" (HTTP {self.status})" if self.status else ""
        self.user_message = f"The translation service (Palabra) is having an outage{status}; try again in a minute."


class PalabraConnectionError(PalabraError):
    """The network failed: connect error, timeout, connection closed unexpectedly."""

    user_message = "The translation service (Palabra) could not be reached; try again in a minute."


# --- streaming ----------------------------------------------------------------------------------
class StreamingError(PalabraError):
    """A streaming session failed."""


class TaskError(StreamingError):
    """The server rejected a command with an `error` message (code, desc, param kept)."""

    def __init__(self, code: str, desc: str, param: object = None) -> None:
        super().__init__(f"{code}: {desc}")
        self.code = code
        self.desc = desc
        self.param = param


class TaskValidationError(TaskError, InvalidRequestError):
    """`VALIDATION_ERROR` for set_task: Palabra's own message is kept in `desc`."""

    def __init__(self, code: str, desc: str, param: object = None, *, summary: str | None = None) -> None:
        TaskError.__init__(self, code, desc, param)
        if summary:  # one readable line instead of a pydantic repr
            self.args = (f"Palabra rejected the task: {summary}",)
        self.status = None
        self.error_code = None
        self.errors = []


class UnsupportedLanguageError(TaskValidationError):
    """Palabra rejected a source or target language code; the message names it and where the list is."""

    def __init__(self, code: str, desc: str, param: object = None, *, language: str, role: str) -> None:
        super().__init__(code, desc, param)
        self.language, self.role = language, role
        self.user_message = f"Palabra does not support the {role} language {language!r}; {LANGUAGES_HINT}."
        self.args = (self.user_message,)


class NotReadyError(StreamingError):
    """The task did not start running in time."""


class SessionClosedError(StreamingError):
    """The session was closed and could not be (or was not allowed to be) re-established."""


class InvalidTaskError(PalabraError, ValueError):
    """Our own validation refused a task before sending it; the message says what is accepted."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.user_message = message


# Errors that retrying the same request cannot fix.
NOT_RETRYABLE: tuple[type[PalabraError], ...] = (
    AuthenticationError,
    InsufficientBalanceError,
    ParallelSessionLimitError,
    TaskValidationError,
)


def as_palabra_error(error: BaseException) -> PalabraError:
    """A failure to connect as the Palabra error it is (an unexpected one keeps its cause)."""
    if isinstance(error, PalabraError):
        return error
    if isinstance(error, OSError):
        return PalabraConnectionError(f"cannot connect to Palabra streaming: {error}")
    failure = SessionClosedError(f"unexpected error while connecting to Palabra: {type(error).__name__}")
    failure.__cause__ = error
    return failure
