"""PalabraRest against the emulator (and raw sockets for network failures), over loopback."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from aiohttp import web

from bot.logs import redact
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.errors import (
    AuthenticationError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PalabraAPIError,
    PalabraConnectionError,
    ParallelSessionLimitError,
    RateLimitedError,
    ServerError,
)
from bot.palabra.rest import (
    PalabraRest,
    error_from_response,
    parse_legacy_session,
    parse_retry_after,
    parse_session,
    unwrap,
)
from tests.fakes import secrets
from tests.fakes.net import LOOPBACK, free_port

APP = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)
KEY = Credentials.from_api_key(secrets.PALABRA_API_KEY)
SECRET_VALUES = (secrets.PALABRA_CLIENT_SECRET, secrets.PALABRA_API_KEY, secrets.STREAM_KEY)

BROADCAST = {
    "title": "Town hall",
    "original_delay_seconds": 3,
    "input": {"protocol": "rtmp_push"},
    "outputs": [
        {
            "protocol": "rtmp_push",
            "lang_code": "es",
            "server": "rtmp://relay.example:1935/live",
            "stream_key": secrets.STREAM_KEY,
        },
        {"protocol": "hls_pull", "lang_codes": ["original", "es"]},
    ],
    "translation_pipeline": {
        "transcription": {"source_language": "en"},
        "translations": [{"target_language": "es", "speech_generation": {"voice_id": "default_low"}}],
    },
}


def _config(**overrides) -> EmulatorConfig:
    return EmulatorConfig(
        client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET},
        api_keys={secrets.PALABRA_API_KEY},
        **overrides,
    )


@pytest.fixture
async def emulator():
    async with serve(_config()) as running:
        yield running


def _client(emulator, creds=APP, **kwargs) -> PalabraRest:
    kwargs.setdefault("backoff_base", 0.01)
    return PalabraRest(creds, emulator.base_url, **kwargs)


def _assert_no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(getattr(exc, "errors", ""))):
        for secret in SECRET_VALUES:
            assert secret not in text


# --- session storage ----------------------------------------------------------------------------
@pytest.mark.parametrize("creds", [APP, KEY], ids=["app", "api_key"])
async def test_session_lifecycle_with_both_credential_kinds(emulator, creds):
    async with _client(emulator, creds) as rest:
        info = await rest.create_session()
        record = emulator.state.sessions[info.id]
        assert info.publisher == record.publisher
        assert info.ws_url == f"{emulator.ws_base_url}/streaming-api/v1/speech-to-speech/stream"
        assert info.intent == "api" and info.subscriber == []
        assert info.webrtc_url and info.webrtc_room_name and info.ws_tts_url
        assert emulator.state.authenticate_stream_token(info.publisher) is record

        summary = await rest.get_session(info.id)
        assert summary.id == info.id and summary.expires_at > summary.created_at
        assert [s.id async for s in rest.list_sessions()] == [info.id]

        extended = await rest.extend_session(info.id, 120)
        assert extended is not None
        assert 110 < (extended.expires_at - extended.updated_at).total_seconds() <= 120

        await rest.delete_session(info.id)
        assert info.id not in emulator.state.sessions
        with pytest.raises(NotFoundError):
            await rest.get_session(info.id)


async def test_publisher_token_is_not_in_repr(emulator):
    async with _client(emulator) as rest:
        info = await rest.create_session()
    assert info.publisher not in repr(info)


async def test_legacy_create_is_parsed(emulator):
    async with _client(emulator) as rest:
        info = await rest.create_session_legacy()
    record = emulator.state.sessions[info.id]
    assert record.legacy and info.publisher == record.publisher
    assert info.ws_url.endswith("/streaming-api/v1/speech-to-speech/stream")
    assert info.webrtc_url and info.webrtc_room_name


async def test_list_sessions_follows_pages(emulator):
    async with _client(emulator) as rest:
        created = [(await rest.create_session()).id for _ in range(7)]
        calls_before = emulator.state.rest_calls
        listed = [s.id async for s in rest.list_sessions(page_size=3)]
    assert sorted(listed) == sorted(created) and len(listed) == 7
    assert emulator.state.rest_calls - calls_before == 3  # pages of 3, 3, 1


async def test_list_sessions_empty_is_null_and_yields_nothing(emulator):
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=APP.rest_headers()) as raw:
        body = (await raw.get("/session-storage/sessions")).json()
    assert body == {"ok": True, "data": []}  # no next_page_token: the last page
    async with _client(emulator) as rest:
        assert [s async for s in rest.list_sessions()] == []


async def test_sessions_expire_after_their_ttl():
    async with serve(_config(session_ttl_s=0.3)) as emulator, _client(emulator) as rest:
        short = await rest.create_session()
        kept = await rest.create_session()
        await rest.extend_session(kept.id, 60)
        await asyncio.sleep(0.5)
        with pytest.raises(NotFoundError):
            await rest.get_session(short.id)
        assert [s.id async for s in rest.list_sessions()] == [kept.id]


async def test_each_credential_sees_only_its_own_sessions(emulator):
    async with _client(emulator, APP) as app_rest, _client(emulator, KEY) as key_rest:
        mine = await app_rest.create_session()
        theirs = await key_rest.create_session()
        assert [s.id async for s in app_rest.list_sessions()] == [mine.id]
        with pytest.raises(NotFoundError):
            await app_rest.get_session(theirs.id)
        with pytest.raises(NotFoundError):
            await app_rest.delete_session(theirs.id)
    assert theirs.id in emulator.state.sessions


async def _serve_sessions(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/session-storage/sessions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def test_listing_reads_every_page_the_documented_way():
    """The session-management page: `page_size` + `page_token` in; `data` + `next_page_token` out."""
    sessions = [{"id": f"s{i}", "created_at": "2026-01-01T00:00:00Z"} for i in range(7)]
    requests = []

    async def documented(request: web.Request) -> web.Response:
        requests.append(dict(request.query))
        size = int(request.query.get("page_size", 10))
        start = int(request.query["page_token"].removeprefix("tok-")) if "page_token" in request.query else 0
        body: dict = {"data": sessions[start : start + size]}
        if start + size < len(sessions):
            body["next_page_token"] = f"tok-{start + size}"
        return web.json_response(body)

    runner, url = await _serve_sessions(documented)
    try:
        async with PalabraRest(APP, url) as rest:
            listed = [s.id async for s in rest.list_sessions(page_size=3)]
    finally:
        await runner.cleanup()
    assert listed == [s["id"] for s in sessions]
    assert requests == [
        {"page_size": "3"},
        {"page_size": "3", "page_token": "tok-3"},
        {"page_size": "3", "page_token": "tok-6"},
    ]


async def test_recovery_listing_sees_sessions_beyond_the_first_page():
    """What crash recovery calls (`list_sessions()` with its default page size) against the emulator."""
    async with serve(_config(max_parallel_sessions=250)) as emulator, _client(emulator) as rest:
        created = {(await rest.create_session()).id for _ in range(230)}
        calls_before = emulator.state.rest_calls
        listed = [s.id async for s in rest.list_sessions()]
        assert emulator.state.rest_calls - calls_before == 3  # pages of 100, 100, 30
    assert len(listed) == 230 and set(listed) == created


async def test_listing_from_a_server_that_ignores_paging_ends():
    """An upstream that answers every page with everything, unwrapped, must not make us loop."""
    requests = []

    async def sessions(request: web.Request) -> web.Response:
        requests.append(dict(request.query))
        body = {"sessions": [{"id": f"s{i}", "expires_at": "2026-01-01T00:00:00Z"} for i in range(3)]}
        return web.json_response({**body, "next_page_token": "always-the-same"})

    runner, url = await _serve_sessions(sessions)
    try:
        async with PalabraRest(APP, url) as rest:
            listed = [s async for s in rest.list_sessions(page_size=2)]
    finally:
        await runner.cleanup()
    assert [s.id for s in listed] == ["s0", "s1", "s2"]
    assert listed[0].expires_at.year == 2026 and listed[0].created_at is None
    assert requests == [{"page_size": "2"}, {"page_size": "2", "page_token": "always-the-same"}]


async def test_broadcast_endpoints(emulator):
    async with _client(emulator, KEY) as rest:
        created = await rest.create_broadcast(BROADCAST)
        assert created["status"] == "waiting_for_input"
        assert created["input"]["server"].startswith("rtmp://") and created["input"]["stream_key"]
        assert created["outputs"][1]["urls"]["es"].endswith(f"/hls/{created['id']}/es.m3u8")

        assert (await rest.get_broadcast(created["id"]))["title"] == "Town hall"
        assert [b["id"] for b in await rest.list_broadcasts()] == [created["id"]]

        updated = await rest.update_broadcast(created["id"], {"title": "Renamed", "original_base_volume": 0.5})
        assert updated["title"] == "Renamed" and updated["original_base_volume"] == 0.5
        assert (await rest.get_broadcast(created["id"]))["title"] == "Renamed"

        token = await rest.broadcast_webrtc_token(created["id"])
        assert token["token"] and token["url"].startswith("ws://")

        await rest.delete_broadcast(created["id"])
        with pytest.raises(NotFoundError) as info:
            await rest.get_broadcast(created["id"])
        assert created["id"] in str(info.value) and "404" in str(info.value)


@pytest.mark.parametrize("read", ["get", "list", "update"])
async def test_stream_keys_in_any_broadcast_response_are_registered_for_redaction(emulator, read):
    # Created behind the client's back (another process, say): only reading it can teach the redactor.
    key = f"key-{read}-{time.monotonic_ns()}"
    body = {
        **BROADCAST,
        "outputs": [
            {"protocol": "rtmp_push", "lang_code": "es", "server": "rtmp://out.example/live", "stream_key": key}
        ],
    }
    async with httpx.AsyncClient(base_url=emulator.base_url, headers=APP.rest_headers()) as http:
        created = (await http.post("/broadcasts", json=body)).json()["data"]
    assert key in redact(key)
    async with _client(emulator) as rest:
        if read == "get":
            await rest.get_broadcast(created["id"])
        elif read == "list":
            await rest.list_broadcasts()
        else:
            await rest.update_broadcast(created["id"], {"title": "Renamed"})
    assert key not in redact(f"payload {key}")


async def test_list_broadcasts_follows_pages(emulator):
    async with _client(emulator) as rest:
        created = {(await rest.create_broadcast({**BROADCAST, "title": f"b{i}"}))["id"] for i in range(5)}
        calls_before = emulator.state.rest_calls
        listed = await rest.list_broadcasts(page_size=2)
    assert {b["id"] for b in listed} == created and len(listed) == 5
    assert emulator.state.rest_calls - calls_before == 3


async def test_invalid_broadcast_is_a_validation_error_with_palabras_detail(emulator):
    body = {**BROADCAST, "outputs": [{"protocol": "hls_pull"}]}
    async with _client(emulator) as rest:
        with pytest.raises(InvalidRequestError) as info:
            await rest.create_broadcast(body)
    assert info.value.status == 422
    assert "POST /broadcasts" in str(info.value) and "hls_pull) needs lang_codes" in str(info.value)
    assert info.value.errors[0]["instance"] == "/broadcasts"


# --- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "creds",
    [
        Credentials.app(secrets.PALABRA_CLIENT_ID, "wrong-" + secrets.PALABRA_CLIENT_SECRET),
        Credentials.from_api_key(secrets.PALABRA_API_KEY + "x"),
    ],
    ids=["app", "api_key"],
)
async def test_rejected_credentials_raise_authentication_error_without_secrets(emulator, creds):
    async with _client(emulator, creds) as rest:
        with pytest.raises(AuthenticationError) as info:
            await rest.create_session()
        with pytest.raises(AuthenticationError):
            await rest.list_broadcasts()
    assert info.value.status == 403 and "POST /session-storage/session" in str(info.value)
    _assert_no_secret(info.value)
    assert "wrong-" not in str(info.value)


async def test_insufficient_balance(emulator):
    emulator.state.insufficient_balance = True
    async with _client(emulator) as rest:
        with pytest.raises(InsufficientBalanceError) as info:
            await rest.create_session()
    assert info.value.status == 403 and info.value.error_code == 100050
    assert "Insufficient balance" in str(info.value)


async def test_parallel_session_limit():
    async with serve(_config(max_parallel_sessions=2)) as emulator, _client(emulator) as rest:
        first = await rest.create_session()
        await rest.create_session()
        with pytest.raises(ParallelSessionLimitError) as info:
            await rest.create_session()
        assert "limit" in str(info.value) and info.value.status == 403
        assert "parallel sessions" in info.value.user_message and "balance" not in info.value.user_message
        await rest.delete_session(first.id)
        assert (await rest.create_session()).id in emulator.state.sessions


async def test_extend_with_out_of_range_ttl_is_a_validation_error(emulator):
    async with _client(emulator) as rest:
        info = await rest.create_session()
        with pytest.raises(InvalidRequestError, match="ttl_seconds must be from 1"):
            await rest.extend_session(info.id, 10**9)


async def test_retries_recover_after_two_failures(emulator, caplog):
    emulator.state.config.update({"rest_fail_first": 2, "rest_fail_status": 503})
    with caplog.at_level(logging.WARNING, logger="bot.palabra.rest"):
        async with _client(emulator) as rest:
            info = await rest.create_session()  # POST: 503 means the server refused before acting
    assert info.id in emulator.state.sessions
    assert emulator.state.rest_calls == 3
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.WARNING for r in retries)


async def test_server_error_after_retries(emulator):
    emulator.state.config.update({"rest_fail_first": 10, "rest_fail_status": 502})
    async with _client(emulator, max_retries=2) as rest:
        with pytest.raises(ServerError) as info:
            await rest.list_broadcasts()
    assert emulator.state.rest_calls == 3 and info.value.status == 502
    assert "GET /broadcasts" in str(info.value)


async def test_non_idempotent_post_is_not_retried_after_a_500(emulator):
    emulator.state.config.update({"rest_fail_first": 10, "rest_fail_status": 500})
    async with _client(emulator, max_retries=3) as rest:
        with pytest.raises(ServerError):
            await rest.create_session()
    assert emulator.state.rest_calls == 1


async def test_rate_limit_honours_retry_after(emulator):
    emulator.state.config.update({"rest_fail_first": 1, "rest_fail_status": 429})
    async with _client(emulator) as rest:
        started = time.monotonic()
        await rest.create_session()
        waited = time.monotonic() - started
    assert waited >= 0.95  # Retry-After: 1, although the backoff alone would be ~10 ms
    assert emulator.state.rest_calls == 2


async def test_rate_limited_error_after_retries(emulator):
    emulator.state.config.update({"rest_fail_first": 10, "rest_fail_status": 429})
    async with _client(emulator, max_retries=1) as rest:
        with pytest.raises(RateLimitedError) as info:
            await rest.create_session()
    assert info.value.retry_after == 1.0 and info.value.status == 429
    assert emulator.state.rest_calls == 2


async def test_retry_after_beyond_the_cap_is_raised_at_once(emulator):
    emulator.state.config.update({"rest_fail_first": 10, "rest_fail_status": 429})
    async with _client(emulator, max_retry_after=0.5) as rest:
        with pytest.raises(RateLimitedError) as info:
            await rest.get_broadcast("anything")
    assert info.value.retry_after == 1.0 and emulator.state.rest_calls == 1


async def test_closed_port_is_a_transport_error():
    port = free_port()
    async with PalabraRest(APP, f"http://{LOOPBACK}:{port}", max_retries=1, backoff_base=0.01) as rest:
        with pytest.raises(PalabraConnectionError, match="could not connect") as info:
            await rest.create_session()
    assert "POST /session-storage/session" in str(info.value)
    _assert_no_secret(info.value)


class _SilentServer:
    """Accepts TCP connections and never answers, to exercise timeouts."""

    def __init__(self) -> None:
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{LOOPBACK}:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        await reader.read(65536)

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()


@pytest.mark.parametrize(
    ("call", "expected_attempts"),
    [
        ("get", 2),  # idempotent: retried once
        ("create", 1),  # POST that may have reached the server: never retried
    ],
)
async def test_timeout_against_a_server_that_never_answers(call, expected_attempts):
    silent = _SilentServer()
    async with silent as url, PalabraRest(APP, url, timeout=0.3, max_retries=1, backoff_base=0.01) as rest:
        with pytest.raises(PalabraConnectionError, match="timed out") as info:
            if call == "get":
                await rest.get_session("some-session")
            else:
                await rest.create_session()
        await asyncio.sleep(0.05)
    assert silent.connections == expected_attempts
    _assert_no_secret(info.value)


# --- pure parsing --------------------------------------------------------------------------------------
def test_parse_documented_session_response():
    body = {
        "ok": True,
        "data": {
            "publisher": "eyJpub.x.y",
            "subscriber": ["eyJsub.x.y"],
            "webrtc_room_name": "room1",
            "webrtc_url": "wss://rtc.example",
            "ws_url": "wss://streaming-0.example/streaming-api/v1/speech-to-speech/stream",
            "ws_tts_url": "wss://tts.example",
            "intent": "api",
            "id": "sess-1",
        },
    }
    info = parse_session(unwrap(body))
    assert (info.id, info.publisher, info.subscriber, info.webrtc_room_name) == (
        "sess-1",
        "eyJpub.x.y",
        ["eyJsub.x.y"],
        "room1",
    )


def test_parse_legacy_session_response():
    info = parse_legacy_session(
        {
            "publisher": ["eyJa.b.c", "eyJd.e.f"],
            "subscriber": [],
            "room_name": "r",
            "stream_url": "wss://livekit.example",
            "control_url": "wss://api.example/stream/control/",
        }
    )
    assert info.publisher == "eyJa.b.c" and info.ws_url == "wss://api.example/stream/control/"
    assert info.webrtc_url == "wss://livekit.example" and info.webrtc_room_name == "r" and info.id is None
    # The current parser hands a list-shaped publisher to the legacy one.
    assert parse_session({"publisher": ["eyJa.b.c"], "control_url": "wss://x"}).publisher == "eyJa.b.c"


def test_unwrap_tolerates_unwrapped_bodies():
    assert unwrap({"ok": True, "data": {"a": 1}}) == {"a": 1}
    assert unwrap({"sessions": None}) == {"sessions": None}
    assert unwrap([1, 2]) == [1, 2]


def _envelope(status, detail, error_code=None):
    entry = {"type": "t", "title": "Title", "detail": detail, "instance": "/x", "status": status}
    if error_code is not None:
        entry["error_code"] = error_code
    return {"ok": False, "errors": [entry]}


@pytest.mark.parametrize(
    ("status", "body", "session_create", "expected"),
    [
        (401, _envelope(401, "Unauthorized"), False, AuthenticationError),
        (403, _envelope(403, "Forbidden"), False, AuthenticationError),
        (404, _envelope(404, "Not found"), True, AuthenticationError),
        (404, _envelope(404, "Not found"), False, NotFoundError),
        (403, _envelope(403, "Insufficient balance", 100050), False, InsufficientBalanceError),
        (402, _envelope(402, "Your balance is low", 100050), False, InsufficientBalanceError),
        (403, _envelope(403, "Parallel session limit reached"), True, ParallelSessionLimitError),
        (403, _envelope(403, "Parallel sessions limit reached"), True, ParallelSessionLimitError),
        (429, _envelope(429, "Too many sessions"), True, ParallelSessionLimitError),
        (400, _envelope(400, "bad"), False, InvalidRequestError),
        (422, {"detail": "bare problem"}, False, InvalidRequestError),
        (429, "slow down", False, RateLimitedError),
        (500, "<html>oops</html>", False, ServerError),
        (504, None, False, ServerError),
        (418, {}, False, PalabraAPIError),
    ],
)
def test_error_mapping(status, body, session_create, expected):
    error = error_from_response("POST", "/x", status, body, session_create=session_create)
    assert type(error) is expected and error.status == status
    assert f"POST /x failed: HTTP {status}" in str(error)


def test_error_message_keeps_palabras_detail_but_redacts_secrets():
    body = _envelope(422, f"stream_key={secrets.STREAM_KEY} is not accepted")
    error = error_from_response("POST", "/broadcasts", 422, body)
    assert "is not accepted" in str(error)
    _assert_no_secret(error)


@pytest.mark.parametrize(("value", "expected"), [("1", 1.0), ("2.5", 2.5), ("-3", 0.0), (None, None), ("soon", None)])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected
