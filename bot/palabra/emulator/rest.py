"""The emulator's REST half: session storage (current + legacy create); broadcasts are in broadcasts.py.

Behaviour, where the real API's is unpublished, is chosen and documented here:

- Credentials: `ClientID`/`ClientSecret` headers (any case, so `ClientId` too) checked against
  `config.client_credentials`, or `Authorization: Bearer <key>` against `config.api_keys`.
  None given -> 401; wrong -> 403. Each credential sees only what it created (others' ids -> 404).
- Parallel sessions: more than `config.max_parallel_sessions` live sessions for one credential ->
  403 with `error_code` 100051 and a "parallel session limit" detail (100050 is reserved for
  insufficient balance, switched on with `POST /_emulator/account {"insufficient_balance": true}`).
- Sessions expire `config.session_ttl_s` after creation (or after `ttl_seconds` from an extend).
- The session listing pages as Palabra's session-management page documents it: `?page_size=1..100`
  and `page_token` (the previous reply's `next_page_token`, an opaque keyset token); the reply is
  `data` (a list) plus `next_page_token` while more pages follow. Broadcast listings page with
  `?limit=1..100&offset=N` and say `has_more` (their docs page shows no paging).
- Broadcast status: "waiting_for_input" -> "streaming" -> "error", driven by tests through
  `POST /_emulator/broadcasts/{id}/status {"status": ..., "description": ...}` (see broadcasts.py).
- Fault injection: while `config.rest_fail_first` > 0, each REST call consumes one and fails with
  `config.rest_fail_status` (429 adds `Retry-After: 1`). Every REST call counts in `state.rest_calls`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.palabra.emulator.state import STATE, EmulatorState, SessionRecord

log = logging.getLogger(__name__)

STREAM_PATH = "/streaming-api/v1/speech-to-speech/stream"
TTS_PATH = "/tts-api/v1/text-to-speech/stream"
REST_PREFIXES = ("/session-storage/", "/broadcasts")
INSUFFICIENT_BALANCE_CODE = 100050
PARALLEL_LIMIT_CODE = 100051
MAX_PAGE = 100
MAX_TTL_S = 7 * 24 * 3600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Rendered by the middleware as Palabra's error envelope."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        error_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.error_code, self.headers = error_code, headers or {}


def add_routes(app: web.Application) -> None:
    app.middlewares.append(_rest_middleware)
    r = app.router
    r.add_post("/session-storage/session", create_session)
    r.add_post("/session-storage/sessions", create_session_legacy)
    r.add_get("/session-storage/sessions", list_sessions)
    r.add_get("/session-storage/sessions/{id}", get_session)
    r.add_delete("/session-storage/sessions/{id}", delete_session)
    r.add_post("/session-storage/sessions/{id}", extend_session)
    r.add_post("/_emulator/account", set_account)


# --- middleware: counting, fault injection, error envelope ---------------------------------------
@web.middleware
async def _rest_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(REST_PREFIXES):
        return await handler(request)
    state = request.app[STATE]
    state.rest_calls += 1
    try:
        _inject_fault(state)
        return await handler(request)
    except ApiError as exc:
        return _error_response(request, exc)


def _inject_fault(state: EmulatorState) -> None:
    if state.config.rest_fail_first <= 0:
        return
    state.config.rest_fail_first -= 1
    status = state.config.rest_fail_status
    headers = {"Retry-After": "1"} if status == 429 else {}
    title = "Too many requests" if status == 429 else "Injected failure"
    raise ApiError(status, title, f"emulator fault injection: HTTP {status}", headers=headers)


def _error_response(request: web.Request, exc: ApiError) -> web.Response:
    entry = {
        "type": "https://docs.palabra.ai/docs/error_codes#" + exc.title.lower().replace(" ", ""),
        "title": exc.title,
        "detail": exc.detail,
        "instance": request.path,
        "status": exc.status,
    }
    if exc.error_code is not None:
        entry["error_code"] = exc.error_code
    return web.json_response({"ok": False, "errors": [entry]}, status=exc.status, headers=exc.headers)


def _ok(data: Any, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({"ok": True, "data": data, **extra}, status=status)


# --- credentials ---------------------------------------------------------------------------------
def authenticate(request: web.Request) -> str:
    """The owner id of the request's credentials, or ApiError 401/403."""
    config = request.app[STATE].config
    client_id = request.headers.get("ClientID")  # CIMultiDict: also ClientId, clientid
    client_secret = request.headers.get("ClientSecret")
    authorization = request.headers.get("Authorization", "")
    if client_id is not None or client_secret is not None:
        expected = config.client_credentials.get(client_id or "")
        if expected is None or client_secret is None or not secrets.compare_digest(expected, client_secret):
            raise ApiError(403, "Forbidden resource", "Invalid client credentials")
        return f"client:{client_id}"
    if authorization:
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "Unauthorized", "Authorization must be 'Bearer <api key>'")
        if not any(secrets.compare_digest(key, known) for known in config.api_keys):
            raise ApiError(403, "Forbidden resource", "Invalid API key")
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    raise ApiError(
        401, "Unauthorized", "Missing credentials: send ClientID and ClientSecret headers or a Bearer API key"
    )


# --- session storage -------------------------------------------------------------------------------
async def create_session(request: web.Request) -> web.Response:
    state, owner = request.app[STATE], authenticate(request)
    data = _data_section(await _json_object(request, allow_empty=True))
    intent = data.get("intent", "api")
    if not isinstance(intent, str) or not intent:
        raise ApiError(422, "Validation error", "data.intent must be a non-empty string")
    session = _new_session(state, owner, intent, legacy=False)
    ws_base = _ws_origin(request)
    body = {
        "id": session.id,
        "publisher": session.publisher,
        "subscriber": [],
        "webrtc_room_name": f"room-{session.id[-12:]}",
        "webrtc_url": f"{ws_base}/livekit",
        "ws_url": ws_base + STREAM_PATH,
        "ws_tts_url": ws_base + TTS_PATH,
        "intent": intent,
        "organization": owner.split(":", 1)[0],
    }
    log.info("emulator: session %s created (intent %s)", session.id[:12], intent)
    return _ok(body, status=201)


async def create_session_legacy(request: web.Request) -> web.Response:
    state, owner = request.app[STATE], authenticate(request)
    data = _data_section(await _json_object(request, allow_empty=True))
    publisher_count = data.get("publisher_count", 1)
    subscriber_count = data.get("subscriber_count", 0)
    if publisher_count != 1:
        raise ApiError(422, "Validation error", "data.publisher_count must be 1 (the emulator supports one publisher)")
    if not isinstance(subscriber_count, int) or not 0 <= subscriber_count <= 10:
        raise ApiError(422, "Validation error", "data.subscriber_count must be an integer from 0 to 10")
    session = _new_session(state, owner, "api", legacy=True)
    ws_base = _ws_origin(request)
    body = {
        "id": session.id,
        "publisher": [session.publisher],
        "subscriber": [state.new_token() for _ in range(subscriber_count)],
        "room_name": f"room-{session.id[-12:]}",
        "stream_url": f"{ws_base}/livekit",
        "control_url": ws_base + STREAM_PATH,
    }
    return _ok(body, status=201)


async def list_sessions(request: web.Request) -> web.Response:
    state, owner = request.app[STATE], authenticate(request)
    state.expire_sessions()
    size, after = _token_paging(request)
    mine = sorted((s for s in state.sessions.values() if s.owner == owner), key=lambda s: (s.created_at, s.id))
    rest = [s for s in mine if after is None or (s.created_at, s.id) > after]
    page = rest[:size]
    more: dict[str, Any] = {"next_page_token": _page_token(page[-1])} if len(rest) > size else {}
    return _ok([_session_summary(s) for s in page], **more)


async def get_session(request: web.Request) -> web.Response:
    return _ok(_session_summary(_owned_session(request)))


async def delete_session(request: web.Request) -> web.Response:
    session = _owned_session(request)
    del request.app[STATE].sessions[session.id]
    return _ok({})


async def extend_session(request: web.Request) -> web.Response:
    session = _owned_session(request)
    raw = request.query.get("ttl_seconds")
    try:
        ttl = int(raw or "")
    except ValueError:
        raise ApiError(400, "Bad request", "ttl_seconds query parameter must be an integer") from None
    if not 1 <= ttl <= MAX_TTL_S:
        raise ApiError(422, "Validation error", f"ttl_seconds must be from 1 to {MAX_TTL_S}")
    now = time.time()
    session.expires_at, session.updated_at = now + ttl, now
    return _ok(_session_summary(session))


def _new_session(state: EmulatorState, owner: str, intent: str, *, legacy: bool) -> SessionRecord:
    if state.insufficient_balance:
        raise ApiError(403, "Forbidden resource", "Insufficient balance", error_code=INSUFFICIENT_BALANCE_CODE)
    state.expire_sessions()
    live = sum(1 for s in state.sessions.values() if s.owner == owner)
    limit = state.config.max_parallel_sessions
    if live >= limit:
        raise ApiError(
            403,
            "Forbidden resource",
            f"Parallel session limit reached ({live} of {limit}); delete unused sessions",
            error_code=PARALLEL_LIMIT_CODE,
        )
    now = time.time()
    session = SessionRecord(
        id=state.new_token(),
        publisher=state.new_token(),
        owner=owner,
        intent=intent,
        created_at=now,
        updated_at=now,
        expires_at=now + state.config.session_ttl_s,
        legacy=legacy,
    )
    state.sessions[session.id] = session
    return session


def _owned_session(request: web.Request) -> SessionRecord:
    state, owner = request.app[STATE], authenticate(request)
    state.expire_sessions()
    session = state.sessions.get(request.match_info["id"])
    if session is None or session.owner != owner:
        raise ApiError(404, "Not found", "Session not found")
    return session


def _session_summary(session: SessionRecord) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": _iso(session.created_at),
        "updated_at": _iso(session.updated_at),
        "expires_at": _iso(session.expires_at),
        "intent": session.intent,
    }


async def set_account(request: web.Request) -> web.Response:
    """Admin: account-level switches (`insufficient_balance`)."""
    try:
        body = await request.json()
        request.app[STATE].insufficient_balance = bool(body["insufficient_balance"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"ok": False, "error": 'send {"insufficient_balance": true|false}'}, status=400)
    return web.json_response({"ok": True})


# --- helpers -----------------------------------------------------------------------------------------
async def _json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty and not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, json.JSONDecodeError):
        raise ApiError(400, "Bad request", "request body must be JSON") from None
    if body is None and allow_empty:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "Bad request", "request body must be a JSON object")
    return body


def _data_section(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise ApiError(422, "Validation error", "data must be an object")
    return data


def _paging(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", MAX_PAGE))
        offset = int(request.query.get("offset", 0))
    except ValueError:
        raise ApiError(400, "Bad request", "limit and offset must be integers") from None
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ApiError(400, "Bad request", f"limit must be from 1 to {MAX_PAGE} and offset at least 0")
    return limit, offset


def _token_paging(request: web.Request) -> tuple[int, tuple[float, str] | None]:
    try:
        size = int(request.query.get("page_size", MAX_PAGE))
    except ValueError:
        raise ApiError(400, "Bad request", "page_size must be an integer") from None
    if not 1 <= size <= MAX_PAGE:
        raise ApiError(400, "Bad request", f"page_size must be from 1 to {MAX_PAGE}")
    token = request.query.get("page_token")
    if token is None:
        return size, None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))["key"]
        return size, (float(key["created_at"]), str(key["id"]))
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "Bad request", "page_token is not a token this server issued") from None


def _page_token(last: SessionRecord) -> str:
    key = {"key": {"created_at": last.created_at, "id": last.id}}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _ws_origin(request: web.Request) -> str:
    scheme = "wss" if request.scheme == "https" else "ws"
    return f"{scheme}://{request.host}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
