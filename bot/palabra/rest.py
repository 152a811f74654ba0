"""Palabra REST client: session storage and broadcasts, over httpx.

Responses come wrapped as `{"ok": true, "data": ...}` (unwrapped bodies are tolerated); errors as
an RFC 9457-style envelope `{"ok": false, "errors": [{type, title, detail, instance, status,
error_code}]}`, mapped onto `bot.palabra.errors`. Interpreting a response is pure (responses.py:
`parse_*`, `error_from_response`); `PalabraRest` only moves requests and applies the retry policy.

Retry policy: 429, 5xx and connection failures are retried with jittered exponential backoff
(Retry-After honoured up to `max_retry_after`). A POST that is not idempotent is retried only when
the server cannot have acted on it: the connection was never made, or the answer was 429 / 503.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bot.logs import redact, register_secret
from bot.palabra.backoff import backoff_delays
from bot.palabra.credentials import DEFAULT_API_URL, Credentials
from bot.palabra.errors import NotFoundError, PalabraAPIError, PalabraConnectionError
from bot.palabra.responses import (
    BROADCAST_PAGE_SIZE,
    SESSION_PAGE_SIZE,
    SessionSummary,
    StreamingSessionInfo,
    error_from_response,
    next_page_token,
    page_items,
    parse_legacy_session,
    parse_retry_after,
    parse_session,
    parse_session_summary,
    unwrap,
)

log = logging.getLogger(__name__)


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
        rng: random.Random | None = None,
    ) -> None:
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._rng = rng or random.Random()
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
        """Every session of these credentials, page by page as the session-management page documents:
        `page_size` and `page_token` in, `data` and `next_page_token` out. The JS SDK's model of the
        reply (`{"sessions": [...] | null}` inside `data`) is read too; a null list is empty."""
        async for item in self._paginate_by_token("/session-storage/sessions", page_size, ("sessions", "items")):
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
    async def create_broadcast(self, body: dict[str, Any]) -> dict[str, Any]:
        data = _expect_dict(unwrap(await self._request("POST", "/broadcasts", json=body)), "POST /broadcasts")
        _register_broadcast_secrets(data)
        return data

    async def list_broadcasts(self, page_size: int = BROADCAST_PAGE_SIZE) -> list[dict[str, Any]]:
        items = [item async for item in self._paginate("/broadcasts", page_size, ("broadcasts", "items"))]
        for item in items:
            if isinstance(item, dict):
                _register_broadcast_secrets(item)
        return items

    async def get_broadcast(self, broadcast_id: str) -> dict[str, Any]:
        path = f"/broadcasts/{_segment(broadcast_id)}"
        data = _expect_dict(unwrap(await self._request("GET", path)), f"GET {path}")
        _register_broadcast_secrets(data)
        return data

    async def update_broadcast(self, broadcast_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        path = f"/broadcasts/{_segment(broadcast_id)}"
        # A PATCH sets fields to given values, so repeating it converges on the same state.
        data = _expect_dict(unwrap(await self._request("PATCH", path, json=patch)), f"PATCH {path}")
        _register_broadcast_secrets(data)
        return data

    async def delete_broadcast(self, broadcast_id: str) -> None:
        await self._delete(f"/broadcasts/{_segment(broadcast_id)}")

    async def broadcast_webrtc_token(self, broadcast_id: str) -> dict[str, Any]:
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

    async def _paginate_by_token(
        self, path: str, page_size: int, list_keys: tuple[str, ...]
    ) -> AsyncIterator[dict[str, Any]]:
        seen: set[str] = set()
        tokens: set[str] = set()
        params: dict[str, Any] = {"page_size": page_size}
        while True:
            body = await self._request("GET", path, params=params)
            items, _has_more = page_items(body, list_keys)
            fresh = [item for item in items if isinstance(item, dict) and str(item.get("id")) not in seen]
            for item in fresh:
                seen.add(str(item.get("id")))
                yield item
            token = next_page_token(body)
            # Stop at the last page, and on a server that repeats a token or a page (it ignores paging).
            if not token or token in tokens or not fresh:
                return
            tokens.add(token)
            params = {"page_size": page_size, "page_token": token}

    async def _paginate(self, path: str, page_size: int, list_keys: tuple[str, ...]) -> AsyncIterator[dict[str, Any]]:
        """`limit`/`offset` paging, for the broadcast listing (whose docs page shows no paging at all)."""
        seen: set[str] = set()
        offset = 0
        while True:
            body = await self._request("GET", path, params={"limit": page_size, "offset": offset})
            items, has_more = page_items(body, list_keys)
            fresh = [item for item in items if isinstance(item, dict) and str(item.get("id")) not in seen]
            for item in fresh:
                seen.add(str(item.get("id")))
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
        params: dict[str, Any] | None = None,
        session_create: bool = False,
        idempotent: bool | None = None,
        attempts: list[int] | None = None,
    ) -> Any:
        idempotent = method in ("GET", "DELETE", "PATCH", "PUT") if idempotent is None else idempotent
        attempts = attempts if attempts is not None else []
        delays = backoff_delays(self._rng, base=self.backoff_base, cap=self.backoff_cap)
        attempt = 0
        while True:
            attempt += 1
            attempts.append(attempt)
            try:
                response = await self._client.request(method, path, json=json, params=params)
            except httpx.HTTPError as exc:
                failure = _transport_error(method, path, exc)
                if attempt > self.max_retries or not _retryable_transport(exc, idempotent):
                    raise failure from None
                await self._backoff(next(delays), attempt, str(failure), None)
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
            await self._backoff(next(delays), attempt, str(error), retry_after)

    async def _backoff(self, delay: float, attempt: int, reason: str, retry_after: float | None) -> None:
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


def _register_broadcast_secrets(data: dict[str, Any]) -> None:
    """Stream keys (ingest and outputs) and tokens in a broadcast payload are secrets: every broadcast
    response passes here before anyone can log it."""
    sections = [data.get("input"), *list(data.get("outputs") or [])]
    for section in sections:
        if isinstance(section, dict):
            for key in ("stream_key", "token"):
                if isinstance(section.get(key), str):
                    register_secret(section[key])


def _expect_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PalabraAPIError(f"Palabra {what}: expected a JSON object, got {type(data).__name__}")
    return data


def _segment(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"not a valid id: {value!r}")
    return value


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
