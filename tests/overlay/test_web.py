"""The overlay's routes over real loopback HTTP: 404 for any bad token, CSP, the event stream and its
resumption, bounded connections, and streams that end when the server stops."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from bot.interpretation.captions import CaptionUpdate
from bot.overlay.feed import FeedHub
from bot.overlay.tokens import OverlayGrant, TokenSigner
from bot.overlay.web import RESUME_POLL_S, OverlayWeb, StreamLimits
from tests.fakes.sse import EventReader
from tests.fakes.waiting import wait_until
from tests.overlay.conftest import KEY, serving


def publish(hub, tid: str, text: str, final: bool = True, session_id: int = 1) -> None:
    hub.caption_updated(CaptionUpdate(session_id, tid, None, text, final, "Alice", 0.0))


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


async def test_a_link_to_a_crashed_session_is_followed_to_the_session_resuming_it():
    """A link signed for session 7, which crashed; this process resumed it as 9 (follow knows) and knows
    nothing of 8. The old link serves 9's captions; a link to 8 stays a 404."""
    hub = FeedHub(first_seq=lambda: 5_000)
    signer = TokenSigner(KEY)
    asked: list[int] = []

    def follow(session_id: int) -> bool:
        asked.append(session_id)
        if session_id != 7:
            return False
        hub.watch(9, "en", ["es"])
        hub.alias(7, 9)
        return True

    async with serving(OverlayWeb(hub, signer, follow=follow)) as served, httpx.AsyncClient(timeout=10) as http:
        old = f"{served.base_url}/overlay/{signer.issue(OverlayGrant(7, 'en'))}"
        other = f"{served.base_url}/overlay/{signer.issue(OverlayGrant(8, 'en'))}"
        assert (await http.get(other)).status_code == 404
        assert (await http.get(old)).status_code == 200
        publish(hub, "a", "hello again", session_id=9)
        # The page comes back with the last id the crashed process gave it (below every new one).
        async with http.stream("GET", f"{old}/events", headers={"Last-Event-ID": "4999"}) as response:
            assert response.status_code == 200
            [(event_id, kind, data)] = await EventReader(response).next(1)
    assert kind == "line" and data["text"] == "hello again" and int(event_id) > 4999
    assert asked[:2] == [8, 7] and 7 not in asked[2:]  # once followed, the hub knows the old link


async def test_a_link_to_a_session_still_being_resumed_is_served_and_its_stream_waits_for_the_resume():
    """Session 7 crashed; the restarted process is still resuming it (as 9) when the page loads. The page
    is served and its stream shows 9's captions once 9 runs; a link to 8, whose resume gave up, ends in a
    404 at that moment; a link to 6, which nobody resumes, is a 404 at once."""
    hub = FeedHub(first_seq=lambda: 5_000)
    signer = TokenSigner(KEY)
    resuming, running, said_in_9 = {7, 8}, set[int](), list[str]()

    def follow(session_id: int) -> bool:  # as OverlayService.follow: watch 9, then what 9 said so far
        if session_id != 7 or 9 not in running:
            return False
        hub.watch(9, "en", ["es"])
        hub.alias(7, 9)
        for k, text in enumerate(said_in_9):
            publish(hub, str(k), text, session_id=9)
        return True

    web = OverlayWeb(hub, signer, follow=follow, resuming=resuming.__contains__)
    async with serving(web) as served, httpx.AsyncClient(timeout=10) as http:
        link = {sid: f"{served.base_url}/overlay/{signer.issue(OverlayGrant(sid, 'en'))}" for sid in (6, 7, 8)}
        assert [(await http.get(link[sid])).status_code for sid in (6, 7, 8)] == [404, 200, 200]
        assert (await http.get(f"{link[6]}/events")).status_code == 404
        waiting = asyncio.create_task(http.get(f"{link[8]}/events"))
        captions = asyncio.create_task(first_event(http, f"{link[7]}/events"))
        await wait_until(lambda: web._open.total() == 2, what="both streams waiting for their resume")
        await asyncio.sleep(3 * RESUME_POLL_S)
        assert not waiting.done() and not captions.done()  # neither answered while its resume is under way
        resuming.discard(8)  # that resume gave up
        assert (await asyncio.wait_for(waiting, 5)).status_code == 404
        running.add(9)
        said_in_9.append("hello after the restart")
        resuming.discard(7)  # resumed: the hub follows 9 from now on
        kind, data = await asyncio.wait_for(captions, 5)
    assert kind == "line" and data["text"] == "hello after the restart"


async def test_a_client_that_leaves_while_its_stream_waits_for_a_resume_frees_its_place():
    hub, signer = FeedHub(), TokenSigner(KEY)
    web = OverlayWeb(hub, signer, StreamLimits(connections_per_link=1), resuming=lambda _session_id: True)
    async with serving(web) as served:
        link = f"{served.base_url}/overlay/{signer.issue(OverlayGrant(7, 'en'))}"
        async with httpx.AsyncClient(timeout=10) as http:
            waiting = asyncio.create_task(http.get(f"{link}/events"))
            await wait_until(lambda: web._open.total() == 1, what="the stream waiting for its resume")
            waiting.cancel()  # the page went away (an OBS source reloaded)
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
        # Still resuming, but the place is free again: the reloaded page is not refused with a 429.
        await wait_until(lambda: web._open.total() == 0, what="the gone client's place freed")


async def first_event(http: httpx.AsyncClient, url: str) -> tuple[str, dict]:
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        [(_id, kind, data)] = await EventReader(response).next(1)
        return kind, data


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
