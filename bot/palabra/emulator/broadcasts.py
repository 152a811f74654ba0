"""The emulator's Broadcaster API: create / list / get / update / delete broadcasts, WebRTC tokens.

Requests go through rest.py's middleware (counting, fault injection, Palabra's error envelope) and
its credential check. Broadcast status: "waiting_for_input" -> "streaming" -> "error", driven by
tests through `POST /_emulator/broadcasts/{id}/status {"status": ..., "description": ...}`.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from aiohttp import web

from bot.palabra.emulator.rest import (  # the REST half's shared request helpers
    ApiError,
    _iso,
    _json_object,
    _ok,
    _paging,
    _ws_origin,
    authenticate,
)
from bot.palabra.emulator.state import STATE

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


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/broadcasts", create_broadcast)
    r.add_get("/broadcasts", list_broadcasts)
    r.add_get("/broadcasts/webrtc-token", broadcast_webrtc_token)  # `?room=<id>` form
    r.add_get("/broadcasts/{id}", get_broadcast)
    r.add_patch("/broadcasts/{id}", update_broadcast)
    r.add_delete("/broadcasts/{id}", delete_broadcast)
    r.add_get("/broadcasts/{id}/webrtc-token", broadcast_webrtc_token)
    r.add_post("/_emulator/broadcasts/{id}/status", set_broadcast_status)


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


def validate_broadcast(body: dict[str, Any]) -> None:
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


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    if name not in body:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(422, "Validation error", f"{name} must be a number from {low:g} to {high:g}")


def _ingest(request: web.Request, spec: dict[str, Any]) -> dict[str, Any]:
    host = request.url.host or "127.0.0.1"
    protocol = spec["protocol"]
    if protocol == "webrtc":
        return {"protocol": protocol, "url": f"{_ws_origin(request)}/livekit", "token": request.app[STATE].new_token()}
    server = f"rtmp://{host}:1935/live" if protocol == "rtmp_push" else f"srt://{host}:9000"
    return {"protocol": protocol, "server": server, "stream_key": f"live_{secrets.token_hex(12)}"}


def _hosted_output(request: web.Request, output: dict[str, Any], broadcast_id: str) -> dict[str, Any]:
    if output.get("protocol") == "hls_pull":
        origin = f"{request.scheme}://{request.host}"
        return {**output, "urls": {code: f"{origin}/hls/{broadcast_id}/{code}.m3u8" for code in output["lang_codes"]}}
    return dict(output)


def _owned_broadcast(request: web.Request, broadcast_id: str | None = None) -> dict[str, Any]:
    state, owner = request.app[STATE], authenticate(request)
    record = state.broadcasts.get(broadcast_id if broadcast_id is not None else request.match_info["id"])
    if record is None or record["_owner"] != owner:
        raise ApiError(404, "Not found", "Broadcast not found")
    return record


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if not key.startswith("_")}
