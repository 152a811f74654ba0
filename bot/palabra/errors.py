"""One exception hierarchy for everything Palabra: callers catch meaningful errors, not httpx's."""

from __future__ import annotations

from bot.errors import BotError


class PalabraError(BotError):
    """Base of every Palabra failure."""


# --- REST ---------------------------------------------------------------------------------------
class PalabraAPIError(PalabraError):
    """The REST API answered with an error envelope (`{"ok": false, "errors": [...]}`) or status."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | None = None,
        errors: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.errors = errors or []


class AuthenticationError(PalabraAPIError):
    """Credentials rejected (401/403/404 on session creation, 403 at the WebSocket upgrade)."""


class InsufficientBalanceError(PalabraAPIError):
    """The account is out of balance or quota (error_code 100050) or the parallel-session limit."""


class NotFoundError(PalabraAPIError):
    """The session or broadcast does not exist (any more)."""


class InvalidRequestError(PalabraAPIError):
    """Palabra rejected what we sent (HTTP 400/422, or `VALIDATION_ERROR` over the WebSocket)."""


class RateLimitedError(PalabraAPIError):
    """HTTP 429 after our retries; `retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(PalabraAPIError):
    """5xx after our retries."""


class PalabraConnectionError(PalabraError):
    """The network failed: connect error, timeout, connection closed unexpectedly."""


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

    def __init__(self, code: str, desc: str, param: object = None) -> None:
        TaskError.__init__(self, code, desc, param)
        self.status = None
        self.error_code = None
        self.errors = []


class NotReadyError(StreamingError):
    """The task did not start running in time."""


class SessionClosedError(StreamingError):
    """The session was closed and could not be (or was not allowed to be) re-established."""


class InvalidTaskError(PalabraError, ValueError):
    """Our own validation refused a task before sending it; the message says what is accepted."""
