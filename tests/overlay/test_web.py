"""The overlay's routes over real loopback HTTP: 404 for any bad token, CSP, the event stream and its
resumption, bounded connections, and streams that end when the server stops."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx

from bot.interpretation.captions import CaptionUpdate
from bot.overlay.tokens import OverlayGrant, TokenSigner


def publish(hub, tid: str, text: str, final: bool = True, session_id: int = 1) -> None:
    hub.caption_updated(CaptionUpdate(session_id, tid, None, text, final, "Alice", 0.0))


class EventReader:
    """Parses a text/event-stream response into (id, event name, data) triples, across several reads."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, count: int) -> list[tuple[str, str, dict]]:
        found: list[tuple[str, str, dict]] = []
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "event" in fields:
                    found.append((fields.get("id", ""), fields["event"], json.loads(fields.get("data", "{}"))))
                    if len(found) == count:
                        return found
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        return found


async def test_a_wrong_tampered_foreign_or_expired_token_is_the_same_plain_404(standalone):
    standalone.hub.watch(1, "en", ["es"])
    good = standalone.link(1, "en")
    token = good.rsplit("/", 1)[1]
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    foreign_token = TokenSigner(b"another key, 32 bytes long......").issue(OverlayGrant(1, "en"))
    foreign = f"{standalone.served.base_url}/overlay/{foreign_token}"
    async with httpx.AsyncClient() as http:
        unknown = await http.get(f"{standalone.served.base_url}/no/such/page")
        assert (await http.get(good)).status_code == 200
        for bad in (
            tampered,
            foreign,
            standalone.link(2, "en"),  # a genuine link to a session this process does not have
            standalone.link(1, "fr"),  # a language the session does not have
            f"{standalone.served.base_url}/overlay/{token}x",
        ):
            for url in (bad, f"{bad}/events"):
                response = await http.get(url)
                assert response.status_code == 404, url
                assert response.text == unknown.text == "404: Not Found"
        standalone.hub.session_ended(1)
        standalone.clock[0] += 59.0
        assert (await http.get(good)).status_code == 200  # the grace: a page can still learn it ended
        standalone.clock[0] += 1.0
        assert (await http.get(good)).status_code == 404
        assert (await http.get(f"{good}/events")).status_code == 404


async def test_the_page_and_its_files_carry_a_strict_content_security_policy(standalone):
    standalone.hub.watch(1, "en", [])
    async with httpx.AsyncClient() as http:
        page = await http.get(standalone.link())
        script = await http.get(f"{standalone.served.base_url}/overlay/static/overlay.js")
        style = await http.get(f"{standalone.served.base_url}/overlay/static/overlay.css")
        missing = await http.get(f"{standalone.served.base_url}/overlay/static/secrets.txt")
    for response in (page, script, style):
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert page.headers["content-type"].startswith("text/html") and page.headers["cache-control"] == "no-store"
    assert script.headers["content-type"].startswith("text/javascript") and "textContent" in script.text
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_a_stream_sends_every_line_then_resumes_after_its_last_event_id(standalone):
    hub = standalone.hub
    hub.watch(1, "en", [])
    publish(hub, "a", "first", final=False)
    events_url = f"{standalone.link()}/events"
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", events_url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = EventReader(response)
            [(first_id, kind, data)] = await reader.next(1)
            assert kind == "line" and data == {"k": 1, "text": "first", "final": False, "speaker": "Alice"}
            publish(hub, "a", "first line", final=True)
            [(second_id, _, data)] = await reader.next(1)
            assert data["k"] == 1 and data["final"] is True and int(second_id) > int(first_id)
        # Disconnected: these happen meanwhile, and the reconnect brings exactly them.
        publish(hub, "b", "second", final=True)
        publish(hub, "c", "third", final=False)
        hub.session_ended(1)
        async with http.stream("GET", events_url, headers={"Last-Event-ID": second_id}) as response:
            resumed = await EventReader(response).next(3)
    assert [(kind, data.get("text")) for _, kind, data in resumed] == [
        ("line", "second"),
        ("line", "third"),
        ("end", None),
    ]
    assert standalone.served.web.resumed == 1


async def test_streams_per_link_are_bounded_and_a_closed_one_frees_its_place(standalone):
    standalone.hub.watch(1, "en", [])
    link, other = standalone.link(), standalone.link()
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as stack:
        streams = [http.stream("GET", f"{link}/events") for _ in range(3)]
        opened = [await stack.enter_async_context(stream) for stream in streams[1:]]
        first = await streams[0].__aenter__()
        assert all(response.status_code == 200 for response in [first, *opened])
        refused = await http.get(f"{link}/events")
        assert refused.status_code == 429 and "Too many" in refused.text
        async with http.stream("GET", f"{other}/events") as response:  # another link has its own budget
            assert response.status_code == 200
        await streams[0].__aexit__(None, None, None)
        publish(standalone.hub, "x", "a line wakes every stream; the closed one's write fails")
        for _ in range(100):
            async with http.stream("GET", f"{link}/events") as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.05)
        assert again.status_code == 200


async def test_open_streams_end_when_the_server_stops(standalone):
    standalone.hub.watch(1, "en", [])
    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", f"{standalone.link()}/events") as response:
        assert response.status_code == 200
        await asyncio.wait_for(standalone.served.server.stop(), timeout=5)
        rest = [line async for line in response.aiter_lines()]
    assert rest[0].startswith("retry:")
