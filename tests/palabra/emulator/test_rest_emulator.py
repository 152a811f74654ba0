"""The emulator's REST half, spoken to with raw HTTP so status codes, headers and envelopes are visible."""

from __future__ import annotations

import copy

import httpx
import pytest
import websockets

from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from tests.fakes import secrets

APP_HEADERS = {"ClientID": secrets.PALABRA_CLIENT_ID, "ClientSecret": secrets.PALABRA_CLIENT_SECRET}
KEY_HEADERS = {"Authorization": f"Bearer {secrets.PALABRA_API_KEY}"}
STREAM_PATH = "/streaming-api/v1/speech-to-speech/stream"

BROADCAST = {
    "title": "Keynote",
    "input": {"protocol": "srt_push"},
    "outputs": [
        {
            "protocol": "srt_push",
            "lang_code": "de",
            "server": "srt://relay.example:9000",
            "stream_key": secrets.STREAM_KEY,
        },
        {"protocol": "hls_pull", "lang_codes": ["original", "de", "fr"]},
    ],
    "translation_pipeline": {
        "transcription": {"source_language": "en"},
        "translations": [{"target_language": "de"}, {"target_language": "fr"}],
    },
}


@pytest.fixture
async def emulator():
    config = EmulatorConfig(
        client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET},
        api_keys={secrets.PALABRA_API_KEY},
    )
    async with serve(config) as running:
        yield running


@pytest.fixture
async def http(emulator):
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        yield client


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert body["ok"] is False and len(body["errors"]) == 1
    entry = body["errors"][0]
    assert set(entry) >= {"type", "title", "detail", "instance", "status"}
    assert entry["status"] == response.status_code
    return entry


# --- credentials -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        APP_HEADERS,
        {"ClientId": secrets.PALABRA_CLIENT_ID, "ClientSecret": secrets.PALABRA_CLIENT_SECRET},
        {"clientid": secrets.PALABRA_CLIENT_ID, "CLIENTSECRET": secrets.PALABRA_CLIENT_SECRET},
        KEY_HEADERS,
        {"authorization": f"bearer {secrets.PALABRA_API_KEY}"},
    ],
    ids=["ClientID", "ClientId", "any-case", "bearer", "bearer-lowercase"],
)
async def test_accepted_credential_spellings(http, headers):
    response = await http.post("/session-storage/session", headers=headers, json={"data": {}})
    assert response.status_code == 201
    body = response.json()
    assert body["ok"] is True and body["data"]["intent"] == "api"


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "Missing credentials"),
        ({"Authorization": "Basic abc"}, 401, "Bearer"),
        ({"ClientID": secrets.PALABRA_CLIENT_ID}, 403, "Invalid client credentials"),
        (
            {"ClientID": "someone-else", "ClientSecret": secrets.PALABRA_CLIENT_SECRET},
            403,
            "Invalid client credentials",
        ),
        ({"Authorization": "Bearer plbr_unknown"}, 403, "Invalid API key"),
    ],
)
async def test_rejected_credentials_get_the_error_envelope(http, emulator, headers, status, detail):
    response = await http.get("/session-storage/sessions", headers=headers)
    assert response.status_code == status
    entry = _error(response)
    assert detail in entry["detail"] and entry["instance"] == "/session-storage/sessions"
    assert secrets.PALABRA_CLIENT_SECRET not in response.text
    assert emulator.state.rest_calls == 1


# --- session storage -------------------------------------------------------------------------------
async def test_create_points_ws_url_at_the_requested_host(http, emulator):
    response = await http.post("/session-storage/session", headers={**APP_HEADERS, "Host": "emulator.test:4321"})
    data = response.json()["data"]
    assert response.status_code == 201
    assert data["ws_url"] == f"ws://emulator.test:4321{STREAM_PATH}"
    assert data["ws_tts_url"].startswith("ws://emulator.test:4321/")
    assert set(data) >= {"id", "publisher", "subscriber", "webrtc_room_name", "webrtc_url", "intent"}
    record = emulator.state.sessions[data["id"]]
    assert record.publisher == data["publisher"] and record.owner == f"client:{secrets.PALABRA_CLIENT_ID}"
    assert data["publisher"].count(".") == 2  # JWT-shaped


async def test_intent_is_kept_and_validated(http):
    ok = await http.post("/session-storage/session", headers=APP_HEADERS, json={"data": {"intent": "broadcast"}})
    assert ok.json()["data"]["intent"] == "broadcast"
    bad = await http.post("/session-storage/session", headers=APP_HEADERS, json={"data": {"intent": 5}})
    assert bad.status_code == 422 and "intent" in _error(bad)["detail"]
    not_json = await http.post("/session-storage/session", headers=APP_HEADERS, content=b"{nope")
    assert not_json.status_code == 400


async def test_legacy_create_shape(http, emulator):
    response = await http.post(
        "/session-storage/sessions", headers=APP_HEADERS, json={"data": {"publisher_count": 1, "subscriber_count": 2}}
    )
    data = response.json()["data"]
    assert response.status_code == 201
    assert isinstance(data["publisher"], list) and len(data["publisher"]) == 1
    assert len(data["subscriber"]) == 2 and data["control_url"].endswith(STREAM_PATH)
    assert emulator.state.sessions[data["id"]].legacy
    too_many = await http.post(
        "/session-storage/sessions", headers=APP_HEADERS, json={"data": {"subscriber_count": 11}}
    )
    assert too_many.status_code == 422 and "subscriber_count" in _error(too_many)["detail"]


async def test_list_pages_by_token_and_validates_paging(http):
    ids = [(await http.post("/session-storage/session", headers=KEY_HEADERS)).json()["data"]["id"] for _ in range(3)]
    first = (await http.get("/session-storage/sessions?page_size=2", headers=KEY_HEADERS)).json()
    token = first["next_page_token"]
    second = (await http.get(f"/session-storage/sessions?page_size=2&page_token={token}", headers=KEY_HEADERS)).json()
    assert "next_page_token" not in second  # the last page
    assert [s["id"] for s in first["data"] + second["data"]] == ids
    assert set(first["data"][0]) >= {"id", "created_at", "updated_at", "expires_at"}
    for query in ("page_size=0", "page_size=101", "page_size=x", "page_token=not-ours"):
        response = await http.get(f"/session-storage/sessions?{query}", headers=KEY_HEADERS)
        assert response.status_code == 400, query


async def test_extend_validates_ttl(http):
    session_id = (await http.post("/session-storage/session", headers=APP_HEADERS)).json()["data"]["id"]
    path = f"/session-storage/sessions/{session_id}"
    assert (await http.post(path + "?ttl_seconds=abc", headers=APP_HEADERS)).status_code == 400
    assert (await http.post(path, headers=APP_HEADERS)).status_code == 400
    assert (await http.post(path + "?ttl_seconds=0", headers=APP_HEADERS)).status_code == 422
    assert (await http.post(path + "?ttl_seconds=30", headers=APP_HEADERS)).status_code == 200


async def test_parallel_limit_answers_403_with_its_own_code(http, emulator):
    emulator.state.config.max_parallel_sessions = 1
    assert (await http.post("/session-storage/session", headers=APP_HEADERS)).status_code == 201
    response = await http.post("/session-storage/session", headers=APP_HEADERS)
    entry = _error(response)
    assert response.status_code == 403 and entry["error_code"] == 100051
    assert "Parallel session limit" in entry["detail"]
    # Another credential has its own allowance.
    assert (await http.post("/session-storage/session", headers=KEY_HEADERS)).status_code == 201


async def test_insufficient_balance_switch(http):
    switched = await http.post("/_emulator/account", json={"insufficient_balance": True})
    assert switched.status_code == 200
    response = await http.post("/session-storage/session", headers=APP_HEADERS)
    entry = _error(response)
    assert response.status_code == 403 and entry["error_code"] == 100050 and entry["detail"] == "Insufficient balance"
    assert (await http.post("/_emulator/account", json={})).status_code == 400


# --- fault injection ---------------------------------------------------------------------------------
async def test_fault_injection_consumes_its_budget_and_sets_retry_after(http, emulator):
    (await http.post("/_emulator/config", json={"rest_fail_first": 2, "rest_fail_status": 429})).raise_for_status()
    statuses = []
    for _ in range(3):
        response = await http.get("/broadcasts", headers=APP_HEADERS)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
    assert statuses == [429, 429, 200]
    assert emulator.state.rest_calls == 3  # admin endpoints are not REST calls


async def test_injected_5xx_has_no_retry_after(http, emulator):
    emulator.state.config.update({"rest_fail_first": 1, "rest_fail_status": 503})
    response = await http.get("/broadcasts", headers=APP_HEADERS)
    assert response.status_code == 503 and "Retry-After" not in response.headers
    assert _error(response)["status"] == 503


# --- broadcasts ------------------------------------------------------------------------------------
async def test_broadcast_create_returns_ingest_and_lifecycle(http):
    response = await http.post("/broadcasts", headers=APP_HEADERS, json=BROADCAST)
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["input"]["server"].startswith("srt://") and data["input"]["stream_key"].startswith("live_")
    assert data["status"] == "waiting_for_input" and data["status_description"] == "Waiting for an input stream"
    assert set(data["outputs"][1]["urls"]) == {"original", "de", "fr"}
    path = f"/broadcasts/{data['id']}"

    for status, description in (("streaming", "Streaming is active"), ("error", "Input stream lost")):
        body = {"status": status, "description": description} if status == "error" else {"status": status}
        assert (await http.post(f"/_emulator{path}/status", json=body)).status_code == 200
        shown = (await http.get(path, headers=APP_HEADERS)).json()["data"]
        assert (shown["status"], shown["status_description"]) == (status, description)
    assert (await http.post(f"/_emulator{path}/status", json={"status": "flying"})).status_code == 400
    assert (await http.post("/_emulator/broadcasts/nope/status", json={"status": "error"})).status_code == 404


async def test_webrtc_input_returns_room_url_and_token(http):
    body = {**BROADCAST, "input": {"protocol": "webrtc"}}
    data = (await http.post("/broadcasts", headers=KEY_HEADERS, json=body)).json()["data"]
    assert data["input"]["url"].startswith("ws://") and data["input"]["token"]
    by_path = (await http.get(f"/broadcasts/{data['id']}/webrtc-token", headers=KEY_HEADERS)).json()["data"]
    by_query = (await http.get(f"/broadcasts/webrtc-token?room={data['id']}", headers=KEY_HEADERS)).json()["data"]
    assert by_path["room_name"] == by_query["room_name"] == f"broadcast-{data['id']}"
    assert by_path["token"] != by_query["token"]


def _variant(path: tuple, value) -> dict:
    body = copy.deepcopy(BROADCAST)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (_variant(("input",), [{"protocol": "rtmp_push"}, {"protocol": "srt_push"}]), "exactly one input"),
        ({**BROADCAST, "inputs": [{"protocol": "rtmp_push"}]}, "exactly one input"),
        (_variant(("input",), _DELETE), "input is required"),
        (_variant(("input", "protocol"), "hls_pull"), "input.protocol 'hls_pull'"),
        (_variant(("outputs",), []), "at least one output"),
        (_variant(("outputs", 0, "stream_key"), ""), "needs a non-empty stream_key"),
        (_variant(("outputs", 0, "server"), _DELETE), "needs a non-empty server"),
        (_variant(("outputs", 0, "server"), "rtmp://x"), "must start with srt://"),
        (_variant(("outputs", 1, "lang_codes"), _DELETE), "needs lang_codes"),
        (_variant(("outputs", 1, "lang_codes"), ["original", "es"]), "'es' is not 'original' or one of"),
        (_variant(("outputs", 0, "protocol"), "ftp"), "outputs[0].protocol 'ftp'"),
        (_variant(("translation_pipeline", "transcription", "source_language"), "xx"), "not a supported source"),
        (_variant(("translation_pipeline", "translations", 1, "target_language"), "klingon"), "translations[1]"),
        (_variant(("translation_pipeline", "translations"), []), "at least one target"),
        (_variant(("translation_pipeline",), _DELETE), "translation_pipeline is required"),
        ({**BROADCAST, "original_ducked_volume": 1.5}, "original_ducked_volume must be a number from 0 to 1"),
    ],
)
async def test_broadcast_validation(http, emulator, body, detail):
    response = await http.post("/broadcasts", headers=APP_HEADERS, json=body)
    assert response.status_code == 422
    assert detail in _error(response)["detail"]
    assert emulator.state.broadcasts == {}


async def test_broadcast_patch(http):
    created = (await http.post("/broadcasts", headers=APP_HEADERS, json=BROADCAST)).json()["data"]
    path = f"/broadcasts/{created['id']}"
    changed = await http.patch(path, headers=APP_HEADERS, json={"title": "New", "ignore_video": True})
    assert changed.status_code == 200 and changed.json()["data"]["title"] == "New"
    assert changed.json()["data"]["input"] == created["input"]  # the ingest stays the same

    refused_input = await http.patch(path, headers=APP_HEADERS, json={"input": {"protocol": "rtmp_push"}})
    assert refused_input.status_code == 422 and "input cannot be changed" in _error(refused_input)["detail"]
    refused_field = await http.patch(path, headers=APP_HEADERS, json={"status": "streaming"})
    assert refused_field.status_code == 422 and "status" in _error(refused_field)["detail"]
    invalid = await http.patch(
        path, headers=APP_HEADERS, json={"outputs": [{"protocol": "hls_pull", "lang_codes": ["ja"]}]}
    )
    assert invalid.status_code == 422
    assert (await http.get(path, headers=APP_HEADERS)).json()["data"]["title"] == "New"


async def test_broadcasts_are_private_to_their_owner(http):
    created = (await http.post("/broadcasts", headers=APP_HEADERS, json=BROADCAST)).json()["data"]
    path = f"/broadcasts/{created['id']}"
    assert (await http.get(path, headers=KEY_HEADERS)).status_code == 404
    assert (await http.delete(path, headers=KEY_HEADERS)).status_code == 404
    assert (await http.get("/broadcasts", headers=KEY_HEADERS)).json()["data"] == []
    assert (await http.delete(path, headers=APP_HEADERS)).status_code == 200
    assert (await http.get(path, headers=APP_HEADERS)).status_code == 404


# --- REST and streaming halves agree -------------------------------------------------------------------
async def test_publisher_token_opens_the_websocket_until_the_session_is_deleted(http):
    data = (await http.post("/session-storage/session", headers=APP_HEADERS)).json()["data"]
    url = f"{data['ws_url']}?token={data['publisher']}"
    async with websockets.connect(url) as ws:
        await ws.ping()
    assert (await http.delete(f"/session-storage/sessions/{data['id']}", headers=APP_HEADERS)).status_code == 200
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        async with websockets.connect(url):
            pass
    assert info.value.response.status_code == 403
