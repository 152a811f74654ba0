"""Reading Palabra's REST responses, without I/O: the response models, their parsers, paging fields,
and the mapping of an error response onto `bot.palabra.errors` (one class per distinct cause)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.logs import redact, register_secret
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PalabraAPIError,
    ParallelSessionLimitError,
    RateLimitedError,
    ServerError,
)

INSUFFICIENT_BALANCE_CODE = 100050
SESSION_PAGE_SIZE = 100
BROADCAST_PAGE_SIZE = 100
# "Parallel sessions limit reached" is Palabra's text for the plan's limit (seen live, issue reports);
# the session-management page only says the limit exists. It is not a balance problem.
_PARALLEL_LIMIT_HINTS = ("parallel session", "session limit", "too many sessions")
_BALANCE_HINTS = ("insufficient balance", "out of balance")


# --- response models ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamingSessionInfo:
    """A session-storage session: `publisher` is the JWT for `{ws_url}?token=...` (a secret)."""

    id: str | None
    publisher: str = field(repr=False)
    ws_url: str
    webrtc_url: str | None = None
    webrtc_room_name: str | None = None
    ws_tts_url: str | None = None
    subscriber: list[str] = field(default_factory=list, repr=False)
    intent: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SessionSummary:
    id: str
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def parse_session(data: dict[str, Any]) -> StreamingSessionInfo:
    """The create response of `POST /session-storage/session` (current shape)."""
    publisher = data.get("publisher")
    if isinstance(publisher, list):  # legacy shape slipped through
        return parse_legacy_session(data)
    ws_url = data.get("ws_url")
    if not isinstance(publisher, str) or not publisher or not isinstance(ws_url, str) or not ws_url:
        raise PalabraAPIError("Palabra session response lacks publisher or ws_url")
    register_secret(publisher)
    return StreamingSessionInfo(
        id=_str_or_none(data.get("id")),
        publisher=publisher,
        ws_url=ws_url,
        webrtc_url=_str_or_none(data.get("webrtc_url")),
        webrtc_room_name=_str_or_none(data.get("webrtc_room_name")),
        ws_tts_url=_str_or_none(data.get("ws_tts_url")),
        subscriber=_str_list(data.get("subscriber")),
        intent=_str_or_none(data.get("intent")),
        raw=data,
    )


def parse_legacy_session(data: dict[str, Any]) -> StreamingSessionInfo:
    """The legacy `POST /session-storage/sessions` shape: publisher tokens as a list, control_url."""
    publishers = _str_list(data.get("publisher"))
    control_url = data.get("control_url") or data.get("ws_url")
    if not publishers or not isinstance(control_url, str) or not control_url:
        raise PalabraAPIError("Palabra legacy session response lacks publisher tokens or control_url")
    for token in publishers:
        register_secret(token)
    return StreamingSessionInfo(
        id=_str_or_none(data.get("id")),
        publisher=publishers[0],
        ws_url=control_url,
        webrtc_url=_str_or_none(data.get("stream_url") or data.get("webrtc_url")),
        webrtc_room_name=_str_or_none(data.get("room_name") or data.get("webrtc_room_name")),
        ws_tts_url=_str_or_none(data.get("ws_tts_url")),
        subscriber=_str_list(data.get("subscriber")),
        intent=_str_or_none(data.get("intent")),
        raw=data,
    )


def parse_session_summary(data: dict[str, Any]) -> SessionSummary:
    if not isinstance(data.get("id"), str):
        raise PalabraAPIError("Palabra session listing has an entry without an id")
    return SessionSummary(
        id=data["id"],
        created_at=_parse_time(data.get("created_at")),
        updated_at=_parse_time(data.get("updated_at")),
        expires_at=_parse_time(data.get("expires_at")),
        raw=data,
    )


def unwrap(body: Any) -> Any:
    """`{"ok": true, "data": X}` -> X; anything else is returned as it is."""
    if isinstance(body, dict) and "data" in body and body.get("ok", True) is not False:
        return body["data"]
    return body


def error_from_response(
    method: str, path: str, status: int, body: Any, retry_after: float | None = None, *, session_create: bool = False
) -> PalabraAPIError:
    """The exception for an error response; the message names the call, the status and Palabra's detail."""
    errors = _error_entries(body)
    first = errors[0] if errors else {}
    error_code = _int_or_none(first.get("error_code"))
    detail = str(first.get("detail") or first.get("title") or _plain_text(body) or "").strip()
    message = redact(f"Palabra {method} {path} failed: HTTP {status}" + (f": {detail}" if detail else ""))
    cls = _error_class(status, error_code, detail.lower(), session_create)
    if cls is RateLimitedError:
        return RateLimitedError(message, retry_after=retry_after, status=status, error_code=error_code, errors=errors)
    return cls(message, status=status, error_code=error_code, errors=errors)


def _error_class(status: int, error_code: int | None, text: str, session_create: bool) -> type[PalabraAPIError]:
    if error_code == INSUFFICIENT_BALANCE_CODE or any(hint in text for hint in _BALANCE_HINTS):
        return InsufficientBalanceError
    if any(hint in text for hint in _PARALLEL_LIMIT_HINTS):
        return ParallelSessionLimitError
    if status in (401, 403) or (status == 404 and session_create):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status in (400, 409, 422):
        return InvalidRequestError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return PalabraAPIError


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds form; an HTTP date is read too)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


# --- helpers ------------------------------------------------------------------------------------------


def _error_entries(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return [_redacted(e) for e in errors if isinstance(e, dict)]
        if isinstance(body.get("detail"), str) or isinstance(body.get("title"), str):
            return [_redacted(body)]  # a bare problem document
        if isinstance(body.get("error"), str):
            return [{"detail": redact(body["error"])}]
    return []


def _redacted(entry: dict[str, Any]) -> dict[str, Any]:
    """An error entry is kept on the exception; a server echoing a credential must not leak it."""
    return {key: redact(value) if isinstance(value, str) else value for key, value in entry.items()}


def _plain_text(body: Any) -> str:
    return body.strip()[:200] if isinstance(body, str) else ""


def next_page_token(body: Any) -> str | None:
    """`next_page_token` beside `data` (the docs), or inside a `data` object."""
    if not isinstance(body, dict):
        return None
    token = body.get("next_page_token")
    data = body.get("data")
    if token is None and isinstance(data, dict):
        token = data.get("next_page_token")
    return token if isinstance(token, str) and token else None


def page_items(body: Any, list_keys: tuple[str, ...]) -> tuple[list[Any], bool | None]:
    has_more = body.get("has_more") if isinstance(body, dict) else None
    data = unwrap(body)
    if isinstance(data, dict):
        has_more = data.get("has_more", has_more)
        for key in list_keys:
            if key in data:
                data = data[key]
                break
    if data is None:
        return [], False
    if not isinstance(data, list):
        raise PalabraAPIError(f"Palabra listing has an unexpected shape ({type(data).__name__})")
    return data, has_more if isinstance(has_more, bool) else None


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).astimezone()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
