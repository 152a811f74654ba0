"""Palabra REST client: session storage and broadcasts, over httpx.

Responses come wrapped as `{"ok": true, "data": ...}` (unwrapped bodies are tolerated); errors as
an RFC 9457-style envelope `{"ok": false, "errors": [{type, title, detail, instance, status,
error_code}]}`, mapped onto `bot.palabra.errors`. Interpreting a response is pure (`parse_*`,
`error_from_response`); `PalabraRest` only moves requests and applies the retry policy.

Retry policy: 429, 5xx and connection failures are retried with jittered exponential backoff
(Retry-After honoured up to `max_retry_after`). A POST that is not idempotent is retried only when
the server cannot have acted on it: the connection was never made, or the answer was 429 / 503.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bot.logs import redact, register_secret
from bot.palabra.credentials import DEFAULT_API_URL, Credentials
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PalabraAPIError,
    PalabraConnectionError,
    RateLimitedError,
    ServerError,
)

log = logging.getLogger(__name__)

INSUFFICIENT_BALANCE_CODE = 100050
SESSION_PAGE_SIZE = 100
BROADCAST_PAGE_SIZE = 100
_LIMIT_HINTS = ("insufficient balance", "parallel session", "session limit", "too many sessions")


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
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class SessionSummary:
    id: str
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


def parse_session(data: dict) -> StreamingSessionInfo:
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


def parse_legacy_session(data: dict) -> StreamingSessionInfo:
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


def parse_session_summary(data: dict) -> SessionSummary:
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
    kwargs = {"status": status, "error_code": error_code, "errors": errors}
    text = detail.lower()
    if error_code == INSUFFICIENT_BALANCE_CODE or any(hint in text for hint in _LIMIT_HINTS):
        return InsufficientBalanceError(message, **kwargs)
    if status in (401, 403) or (status == 404 and session_create):
        return AuthenticationError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status in (400, 409, 422):
        return InvalidRequestError(message, **kwargs)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    return PalabraAPIError(message, **kwargs)


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


# --- client -----------------------------------------------------------------------------------------
class PalabraRest:
    """Async client for Palabra's REST API. Use as `async with PalabraRest(creds) as rest:` or call `aclose()`."""

    def __init__(
        self,
        credentials: Credentials,
        base_url: str = DEFAULT_API_URL,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={**credentials.rest_headers(), "Accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> PalabraRest:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- session storage --------------------------------------------------------------------------
    async def create_session(self, intent: str = "api") -> StreamingSessionInfo:
        body = await self._request(
            "POST", "/session-storage/session", json={"data": {"intent": intent}}, session_create=True
        )
        return parse_session(_expect_dict(unwrap(body), "POST /session-storage/session"))

    async def create_session_legacy(self, publisher_count: int = 1, subscriber_count: int = 0) -> StreamingSessionInfo:
        payload = {"data": {"publisher_count": publisher_count, "subscriber_count": subscriber_count}}
        body = await self._request("POST", "/session-storage/sessions", json=payload, session_create=True)
        return parse_legacy_session(_expect_dict(unwrap(body), "POST /session-storage/sessions"))

    async def list_sessions(self, page_size: int = SESSION_PAGE_SIZE) -> AsyncIterator[SessionSummary]:
        """Every session of these credentials, page by page (`limit`/`offset`; a null list is empty)."""
        async for item in self._paginate("/session-storage/sessions", page_size, ("sessions", "items")):
            yield parse_session_summary(item)

    async def get_session(self, session_id: str) -> SessionSummary:
        path = f"/session-storage/sessions/{_segment(session_id)}"
        return parse_session_summary(_expect_dict(unwrap(await self._request("GET", path)), f"GET {path}"))

    async def delete_session(self, session_id: str) -> None:
        await self._delete(f"/session-storage/sessions/{_segment(session_id)}")

    async def extend_session(self, session_id: str, ttl_seconds: int) -> SessionSummary | None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        path = f"/session-storage/sessions/{_segment(session_id)}"
        # Setting a TTL is idempotent: repeating it after a lost answer does no harm.
        body = unwrap(await self._request("POST", path, params={"ttl_seconds": int(ttl_seconds)}, idempotent=True))
        return parse_session_summary(body) if isinstance(body, dict) and "id" in body else None

    # --- broadcasts -------------------------------------------------------------------------------
    async def create_broadcast(self, body: dict) -> dict:
        data = _expect_dict(unwrap(await self._request("POST", "/broadcasts", json=body)), "POST /broadcasts")
        _register_broadcast_secrets(data)
        return data

    async def list_broadcasts(self, page_size: int = BROADCAST_PAGE_SIZE) -> list[dict]:
        items = [item async for item in self._paginate("/broadcasts", page_size, ("broadcasts", "items"))]
        for item in items:
            if isinstance(item, dict):
                _register_broadcast_secrets(item)
        return items

    async def get_broadcast(self, broadcast_id: str) -> dict:
        path = f"/broadcasts/{_segment(broadcast_id)}"
        data = _expect_dict(unwrap(await self._request("GET", path)), f"GET {path}")
        _register_broadcast_secrets(data)
        return data

    async def update_broadcast(self, broadcast_id: str, patch: dict) -> dict:
        path = f"/broadcasts/{_segment(broadcast_id)}"
        # A PATCH sets fields to given values, so repeating it converges on the same state.
        data = _expect_dict(unwrap(await self._request("PATCH", path, json=patch)), f"PATCH {path}")
        _register_broadcast_secrets(data)
        return data

    async def delete_broadcast(self, broadcast_id: str) -> None:
        await self._delete(f"/broadcasts/{_segment(broadcast_id)}")

    async def broadcast_webrtc_token(self, broadcast_id: str) -> dict:
        path = f"/broadcasts/{_segment(broadcast_id)}/webrtc-token"
        data = _expect_dict(unwrap(await self._request("GET", path)), f"GET {path}")
        if isinstance(data.get("token"), str):
            register_secret(data["token"])
        return data

    # --- plumbing ---------------------------------------------------------------------------------
    async def _delete(self, path: str) -> None:
        attempts: list[int] = []
        try:
            await self._request("DELETE", path, attempts=attempts)
        except NotFoundError:
            # A retried DELETE finding nothing means an earlier attempt already succeeded.
            if len(attempts) < 2:
                raise
            log.info("Palabra DELETE %s: already gone after a retried attempt", path)

    async def _paginate(self, path: str, page_size: int, list_keys: tuple[str, ...]) -> AsyncIterator[dict]:
        seen: set[str] = set()
        offset = 0
        while True:
            body = await self._request("GET", path, params={"limit": page_size, "offset": offset})
            items, has_more = _page_items(body, list_keys)
            fresh = [item for item in items if isinstance(item, dict) and item.get("id") not in seen]
            for item in fresh:
                seen.add(item.get("id"))
                yield item
            # Stop on an explicit end, a short page, or a server that ignores paging (nothing new).
            if has_more is False or not fresh or (has_more is None and len(items) < page_size):
                return
            offset += len(items)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        session_create: bool = False,
        idempotent: bool | None = None,
        attempts: list[int] | None = None,
    ) -> Any:
        idempotent = method in ("GET", "DELETE", "PATCH", "PUT") if idempotent is None else idempotent
        attempts = attempts if attempts is not None else []
        attempt = 0
        while True:
            attempt += 1
            attempts.append(attempt)
            try:
                response = await self._client.request(method, path, json=json, params=params)
            except httpx.HTTPError as exc:
                error = _transport_error(method, path, exc)
                if attempt > self.max_retries or not _retryable_transport(exc, idempotent):
                    raise error from None
                await self._backoff(method, path, attempt, str(error), None)
                continue
            if response.is_success:
                return _json_body(response, method, path)
            body = _json_or_text(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error = error_from_response(
                method, path, response.status_code, body, retry_after, session_create=session_create
            )
            if attempt > self.max_retries or not _retryable_status(response.status_code, idempotent):
                raise error
            if retry_after is not None and retry_after > self.max_retry_after:
                raise error  # the caller decides whether to wait that long
            await self._backoff(method, path, attempt, str(error), retry_after)

    async def _backoff(self, method: str, path: str, attempt: int, reason: str, retry_after: float | None) -> None:
        delay = self.backoff_base * 2 ** (attempt - 1)
        delay = min(self.backoff_cap, delay) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.warning("%s; retry %d/%d in %.2fs", reason, attempt, self.max_retries, delay)
        await asyncio.sleep(delay)


# --- helpers ------------------------------------------------------------------------------------------
def _retryable_status(status: int, idempotent: bool) -> bool:
    if status in (429, 503):
        return True  # the server refused before acting
    return idempotent and status >= 500


def _retryable_transport(exc: httpx.HTTPError, idempotent: bool) -> bool:
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return True  # the request never reached the server
    return idempotent and isinstance(exc, httpx.TransportError)


def _transport_error(method: str, path: str, exc: httpx.HTTPError) -> PalabraConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        what = f"timed out ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        what = "could not connect"
    else:
        what = f"network error ({type(exc).__name__})"
    detail = str(exc).strip()
    return PalabraConnectionError(redact(f"Palabra {method} {path} {what}" + (f": {detail}" if detail else "")))


def _json_body(response: httpx.Response, method: str, path: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise PalabraAPIError(
            f"Palabra {method} {path}: HTTP {response.status_code} with a body that is not JSON",
            status=response.status_code,
        ) from None


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _error_entries(body: Any) -> list[dict]:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            return [_redacted(e) for e in errors if isinstance(e, dict)]
        if isinstance(body.get("detail"), str) or isinstance(body.get("title"), str):
            return [_redacted(body)]  # a bare problem document
        if isinstance(body.get("error"), str):
            return [{"detail": redact(body["error"])}]
    return []


def _redacted(entry: dict) -> dict:
    """An error entry is kept on the exception; a server echoing a credential must not leak it."""
    return {key: redact(value) if isinstance(value, str) else value for key, value in entry.items()}


def _plain_text(body: Any) -> str:
    return body.strip()[:200] if isinstance(body, str) else ""


def _page_items(body: Any, list_keys: tuple[str, ...]) -> tuple[list, bool | None]:
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


def _register_broadcast_secrets(data: dict) -> None:
    """Stream keys (ingest and outputs) and tokens in a broadcast payload are secrets: every broadcast
    response passes here before anyone can log it."""
    sections = [data.get("input"), *list(data.get("outputs") or [])]
    for section in sections:
        if isinstance(section, dict):
            for key in ("stream_key", "token"):
                if isinstance(section.get(key), str):
                    register_secret(section[key])


def _expect_dict(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise PalabraAPIError(f"Palabra {what}: expected a JSON object, got {type(data).__name__}")
    return data


def _segment(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"not a valid id: {value!r}")
    return value


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


__all__ = [
    "PalabraRest",
    "SessionSummary",
    "StreamingSessionInfo",
    "error_from_response",
    "parse_legacy_session",
    "parse_retry_after",
    "parse_session",
    "parse_session_summary",
    "unwrap",
]
