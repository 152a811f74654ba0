"""The emulator's REST half: session storage (current + legacy create) and broadcasts.

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
  `POST /_emulator/broadcasts/{id}/status {"status": ..., "description": ...}`.
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
import uuid
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

INPUT_PROTOCOLS = ("rtmp_push", "srt_push", "webrtc")
OUTPUT_PROTOCOLS = ("rtmp_push", "srt_push", "webrtc", "hls_pull")
BROADCAST_STATUSES = {
    "waiting_for_input": "Waiting for an input stream",
    "streaming": "Streaming is active",
    "error": "Streaming error",
}
_PATCHABLE = {
    "title",
    "region",
    "original_delay_seconds",
    "original_base_volume",
    "original_ducked_volume",
    "ignore_video",
    "outputs",
    "translation_pipeline",
    "translation_settings",
}

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
    r.add_post("/broadcasts", create_broadcast)
    r.add_get("/broadcasts", list_broadcasts)
    r.add_get("/broadcasts/webrtc-token", broadcast_webrtc_token)  # `?room=<id>` form
    r.add_get("/broadcasts/{id}", get_broadcast)
    r.add_patch("/broadcasts/{id}", update_broadcast)
    r.add_delete("/broadcasts/{id}", delete_broadcast)
    r.add_get("/broadcasts/{id}/webrtc-token", broadcast_webrtc_token)
    r.add_post("/_emulator/broadcasts/{id}/status", set_broadcast_status)
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
    more = {"next_page_token": _page_token(page[-1])} if len(rest) > size else {}
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


def _session_summary(session: SessionRecord) -> dict:
    return {
        "id": session.id,
        "created_at": _iso(session.created_at),
        "updated_at": _iso(session.updated_at),
        "expires_at": _iso(session.expires_at),
        "intent": session.intent,
    }


# --- broadcasts ------------------------------------------------------------------------------------
async def create_broadcast(request: web.Request) -> web.Response:
    state, owner = request.app[STATE], authenticate(request)
    body = await _json_object(request)
    validate_broadcast(body)
    broadcast_id = str(uuid.uuid4())
    now = _iso(time.time())
    record = {key: value for key, value in body.items() if key not in ("input", "outputs")}
    record.update(
        id=broadcast_id,
        input=_ingest(request, body["input"]),
        outputs=[_hosted_output(request, output, broadcast_id) for output in body["outputs"]],
        status="waiting_for_input",
        status_description=BROADCAST_STATUSES["waiting_for_input"],
        created_at=now,
        updated_at=now,
        _owner=owner,
    )
    state.broadcasts[broadcast_id] = record
    return _ok(_public(record), status=201)


async def list_broadcasts(request: web.Request) -> web.Response:
    state, owner = request.app[STATE], authenticate(request)
    limit, offset = _paging(request)
    mine = sorted(
        (b for b in state.broadcasts.values() if b["_owner"] == owner), key=lambda b: (b["created_at"], b["id"])
    )
    page = [_public(b) for b in mine[offset : offset + limit]]
    return _ok(page, has_more=offset + limit < len(mine))


async def get_broadcast(request: web.Request) -> web.Response:
    return _ok(_public(_owned_broadcast(request)))


async def update_broadcast(request: web.Request) -> web.Response:
    record = _owned_broadcast(request)
    patch = await _json_object(request)
    if "input" in patch:
        raise ApiError(422, "Validation error", "input cannot be changed; create a new broadcast instead")
    unknown = set(patch) - _PATCHABLE
    if unknown:
        raise ApiError(422, "Validation error", f"fields that cannot be updated: {', '.join(sorted(unknown))}")
    merged = {**_public(record), **patch}
    merged["input"] = {"protocol": record["input"]["protocol"]}
    validate_broadcast(merged)
    if "outputs" in patch:
        patch = {**patch, "outputs": [_hosted_output(request, o, record["id"]) for o in patch["outputs"]]}
    record.update(patch, updated_at=_iso(time.time()))
    return _ok(_public(record))


async def delete_broadcast(request: web.Request) -> web.Response:
    record = _owned_broadcast(request)
    del request.app[STATE].broadcasts[record["id"]]
    return _ok({})


async def broadcast_webrtc_token(request: web.Request) -> web.Response:
    record = _owned_broadcast(request, request.match_info.get("id") or request.query.get("room", ""))
    token = request.app[STATE].new_token()
    return _ok({"url": f"{_ws_origin(request)}/livekit", "token": token, "room_name": f"broadcast-{record['id']}"})


async def set_broadcast_status(request: web.Request) -> web.Response:
    """Admin: move a broadcast through its status lifecycle (no credentials; tests drive it)."""
    record = request.app[STATE].broadcasts.get(request.match_info["id"])
    if record is None:
        return web.json_response({"ok": False, "error": "no such broadcast"}, status=404)
    try:
        body = await request.json()
        status = body["status"]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"ok": False, "error": 'send {"status": ..., "description": ...}'}, status=400)
    if status not in BROADCAST_STATUSES:
        return web.json_response(
            {"ok": False, "error": f"status must be one of {', '.join(BROADCAST_STATUSES)}"}, status=400
        )
    record.update(
        status=status,
        status_description=body.get("description") or BROADCAST_STATUSES[status],
        updated_at=_iso(time.time()),
    )
    return web.json_response({"ok": True, "data": _public(record)})


async def set_account(request: web.Request) -> web.Response:
    """Admin: account-level switches (`insufficient_balance`)."""
    try:
        body = await request.json()
        request.app[STATE].insufficient_balance = bool(body["insufficient_balance"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"ok": False, "error": 'send {"insufficient_balance": true|false}'}, status=400)
    return web.json_response({"ok": True})


def validate_broadcast(body: dict) -> None:
    """Raise ApiError 422 with a clear detail for anything the emulator would not accept."""
    _validate_input(body.get("input"), "inputs" in body)
    pipeline = body.get("translation_pipeline", body.get("translation_settings"))
    targets = _validate_pipeline(pipeline)
    _validate_outputs(body.get("outputs"), targets)
    for name in ("original_base_volume", "original_ducked_volume"):
        _check_number(body, name, 0.0, 1.0)
    _check_number(body, "original_delay_seconds", 0.0, 60.0)
    if "title" in body and not isinstance(body["title"], str):
        raise ApiError(422, "Validation error", "title must be a string")


def _validate_input(value: Any, plural_given: bool) -> None:
    if plural_given or isinstance(value, list):
        raise ApiError(422, "Validation error", "a broadcast takes exactly one input: send 'input' as one object")
    if not isinstance(value, dict):
        raise ApiError(
            422, "Validation error", f'input is required: {{"protocol": one of {", ".join(INPUT_PROTOCOLS)}}}'
        )
    if value.get("protocol") not in INPUT_PROTOCOLS:
        raise ApiError(
            422,
            "Validation error",
            f"input.protocol {value.get('protocol')!r} is not one of {', '.join(INPUT_PROTOCOLS)}",
        )


def _validate_pipeline(pipeline: Any) -> set[str]:
    from bot.palabra.languages import SOURCE_LANGUAGES, TARGET_LANGUAGES

    if not isinstance(pipeline, dict):
        raise ApiError(422, "Validation error", "translation_pipeline is required (transcription + translations)")
    source = (pipeline.get("transcription") or {}).get("source_language")
    if source not in SOURCE_LANGUAGES:
        raise ApiError(
            422,
            "Validation error",
            f"translation_pipeline.transcription.source_language {source!r} is not a supported source language",
        )
    translations = pipeline.get("translations")
    if not isinstance(translations, list) or not translations:
        raise ApiError(422, "Validation error", "translation_pipeline.translations must list at least one target")
    targets = set()
    for index, translation in enumerate(translations):
        target = translation.get("target_language") if isinstance(translation, dict) else None
        if target not in TARGET_LANGUAGES:
            raise ApiError(
                422,
                "Validation error",
                f"translation_pipeline.translations[{index}].target_language {target!r} "
                "is not a supported target language",
            )
        targets.add(target)
    return targets


def _validate_outputs(outputs: Any, targets: set[str]) -> None:
    if not isinstance(outputs, list) or not outputs:
        raise ApiError(422, "Validation error", "outputs must be a list with at least one output")
    allowed = targets | {"original"}
    for index, output in enumerate(outputs):
        where = f"outputs[{index}]"
        protocol = output.get("protocol") if isinstance(output, dict) else None
        if protocol not in OUTPUT_PROTOCOLS:
            raise ApiError(
                422, "Validation error", f"{where}.protocol {protocol!r} is not one of {', '.join(OUTPUT_PROTOCOLS)}"
            )
        if protocol in ("rtmp_push", "srt_push"):
            for key in ("server", "stream_key"):
                if not isinstance(output.get(key), str) or not output[key].strip():
                    raise ApiError(422, "Validation error", f"{where} ({protocol}) needs a non-empty {key}")
            prefix = protocol.split("_")[0] + "://"
            if not output["server"].startswith(prefix):
                raise ApiError(422, "Validation error", f"{where}.server must start with {prefix}")
            codes = [output.get("lang_code")]
        elif protocol == "hls_pull":
            codes = output.get("lang_codes")
            if not isinstance(codes, list) or not codes:
                raise ApiError(422, "Validation error", f'{where} (hls_pull) needs lang_codes, e.g. ["original", "es"]')
        else:
            codes = output.get("lang_codes") or ([output["lang_code"]] if "lang_code" in output else [])
        for code in codes:
            if code not in allowed:
                raise ApiError(
                    422,
                    "Validation error",
                    f"{where} language {code!r} is not 'original' or one of the translation targets "
                    f"({', '.join(sorted(targets))})",
                )


def _check_number(body: dict, name: str, low: float, high: float) -> None:
    if name not in body:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(422, "Validation error", f"{name} must be a number from {low:g} to {high:g}")


def _ingest(request: web.Request, spec: dict) -> dict:
    host = request.url.host or "127.0.0.1"
    protocol = spec["protocol"]
    if protocol == "webrtc":
        return {"protocol": protocol, "url": f"{_ws_origin(request)}/livekit", "token": request.app[STATE].new_token()}
    server = f"rtmp://{host}:1935/live" if protocol == "rtmp_push" else f"srt://{host}:9000"
    return {"protocol": protocol, "server": server, "stream_key": f"live_{secrets.token_hex(12)}"}


def _hosted_output(request: web.Request, output: dict, broadcast_id: str) -> dict:
    if output.get("protocol") == "hls_pull":
        origin = f"{request.scheme}://{request.host}"
        return {**output, "urls": {code: f"{origin}/hls/{broadcast_id}/{code}.m3u8" for code in output["lang_codes"]}}
    return dict(output)


def _owned_broadcast(request: web.Request, broadcast_id: str | None = None) -> dict:
    state, owner = request.app[STATE], authenticate(request)
    record = state.broadcasts.get(broadcast_id if broadcast_id is not None else request.match_info["id"])
    if record is None or record["_owner"] != owner:
        raise ApiError(404, "Not found", "Broadcast not found")
    return record


def _public(record: dict) -> dict:
    return {key: value for key, value in record.items() if not key.startswith("_")}


# --- helpers -----------------------------------------------------------------------------------------
async def _json_object(request: web.Request, *, allow_empty: bool = False) -> dict:
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


def _data_section(body: dict) -> dict:
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
