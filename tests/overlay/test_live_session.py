"""A whole session with its caption page open in a real browser: the fake Discord (Alice speaks, DAVE
voice), the Palabra emulator, the real cogs and manager, the overlay served by the bot's HTTP server.

The emulator is made to transcribe markup (a transcript is whatever Palabra says: it may contain
anything), so the same lines prove that the page shows text as text and runs nothing."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from bot.db import guilds
from bot.interpretation.captions import CaptionUpdate
from bot.overlay.web import StreamLimits
from bot.palabra.emulator.translator import FakeTranslator
from tests.cogs.conftest import ephemeral, running_world, shown
from tests.fakes.audio import SPEECH_A, decode
from tests.fakes.browser import CAPTION_RECORDER, wait_until_true
from tests.interpretation.conftest import listener_dave_ready, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

RATE = 48000
MARKUP = "<img src=x onerror=window.__pwned=1>"
LATENCY_LIMIT_S = 0.5
LINK = re.compile(r"http://127\.0\.0\.1:\d+/overlay/[A-Za-z0-9_.\-]+")


class PublishTimes:
    """A second subscriber to the session: when each caption state was published, by the server's clock."""

    def __init__(self) -> None:
        self.updates: list[CaptionUpdate] = []

    def caption_updated(self, update: CaptionUpdate) -> None:
        self.updates.append(update)

    def session_ended(self, session_id: int) -> None:
        pass

    def published_at(self, text: str, final: bool) -> float:
        return next(u.published_at for u in self.updates if u.language is None and u.text == text and u.final == final)


def markup_text(_tid: str, seconds: float) -> str:
    return f"{MARKUP} " + " ".join(f"word{k}" for k in range(max(1, int(seconds / 0.3))))


async def ask_for_link(world, user, **options) -> str:
    record = await world.command(user, "interpret", "overlay", **options)
    assert ephemeral(record), shown(record)
    found = LINK.search(shown(record))
    assert found, shown(record)
    return found.group(0)


async def test_a_live_session_in_the_browser_partial_then_final_in_time_text_only_resumed_and_ended(
    tmp_path, monkeypatch, browser
):
    monkeypatch.setattr(FakeTranslator, "_source_text", staticmethod(markup_text))
    limits = StreamLimits(retry_ms=200)
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with running_world(url, speaker_tokens=(), overlay_limits=limits) as world:
        manager, served = world.manager, world.overlay
        fake = world.fake
        async with world.services.database.session() as s:
            await guilds.set_languages(s, fake.guild.id, "en", ["es"])
        alice, bob = await fake.add_user("Alice"), await fake.add_user("Bob")
        await world.join_voice(alice, "Voice A")
        await world.join_voice(bob, "Voice A")
        started = await world.command(alice, "interpret", "start")
        assert "Interpreting" in shown(started), shown(started)

        # Who may have a link, and for which languages.
        refused = await world.command(bob, "interpret", "overlay")
        assert ephemeral(refused) and "Only the member who started" in shown(refused)
        wrong = await world.command(alice, "interpret", "overlay", language="de")
        assert ephemeral(wrong) and "`en`" in shown(wrong) and "`es`" in shown(wrong)
        typed = world.payload(alice, "interpret", "overlay", focused="language", language="s")
        completed = await world.send(typed)
        assert [c["value"] for c in completed.responses[0]["data"]["choices"]] == ["es"]  # the session's only
        link = await ask_for_link(world, alice)
        spanish = await ask_for_link(world, alice, language="es")
        assert link != spanish

        running = next(iter(manager.sessions.values()))
        times = PublishTimes()
        running.live.subscribe(times)
        page = await browser.new_page(viewport={"width": 1280, "height": 360})
        await page.add_init_script(CAPTION_RECORDER)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        response = await page.goto(link + "?lines=3&size=40")
        assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
        es_page = await browser.new_page()
        assert (await es_page.goto(spanish)).status == 200

        await wait_for(lambda: listener_dave_ready(manager, 3), what="the listener's DAVE group")
        await alice.wait_dave_ready(members=3)
        audio = decode(SPEECH_A, rate=RATE, channels=2)[: int(5.0 * RATE) * 4]
        speaking = asyncio.create_task(alice.speak(audio + bytes(int(1.5 * RATE) * 4)))
        await wait_until_true(page, "window.__seen.some(s => s.final)", timeout=20)
        # Cut every stream mid-session: the page reconnects with Last-Event-ID and resumes.
        served.web.drop_streams()
        await speaking
        await wait_for(lambda: sum(u.final and u.language is None for u in times.updates) >= 2, timeout=20)
        finals = [u.text for u in times.updates if u.final and u.language is None]
        await wait_until_true(page, f"window.__seen.filter(s => s.final).length >= {len(finals)}", timeout=10)
        seen = await page.evaluate("window.__seen")

        # Partial first, then the final under the speaker's name, each within the limit of its publication.
        lags = []
        for text in finals:
            final_seen = next(s for s in seen if s["final"] and s["text"] == text)
            assert final_seen["name"] == "Alice"
            lags.append(final_seen["t"] / 1000 - times.published_at(text, final=True))
            partials = [s for s in seen if not s["final"] and text.startswith(s["text"].rstrip(" …"))]
            assert partials and min(s["t"] for s in partials) < final_seen["t"]
            first = min(partials, key=lambda s: s["t"])
            lags.append(first["t"] / 1000 - times.published_at(first["text"], final=False))
        print(f"overlay: publish -> shown in the page: max {max(lags) * 1000:.0f} ms over {len(lags)} states")
        assert max(lags) <= LATENCY_LIMIT_S
        assert [line["text"] for line in await visible_lines(page)] == finals[-3:]  # resumed, nothing skipped
        assert served.web.resumed >= 1

        # Markup was shown as text and nothing ran or loaded.
        assert all(text.startswith(MARKUP) for text in finals)
        assert await page.locator("#captions img").count() == 0
        assert await page.evaluate("window.__pwned") is None
        assert not [url for url in requests if url.endswith("/x")]
        content = await page.content()
        assert str(alice.id) not in content and str(fake.guild.id) not in content

        # The Spanish page got the translations.
        es_lines = await visible_lines(es_page)
        assert es_lines and all(line["text"].startswith("[es] ") for line in es_lines)

        screenshot = tmp_path / "overlay.png"
        await page.screenshot(path=str(screenshot), omit_background=True)
        print(f"overlay screenshot: {screenshot}")

        # A tampered link is a 404; the stop ends the page.
        tampered = await browser.new_page()
        assert (await tampered.goto(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))).status == 404
        stopped_at = time.time()
        stop = await world.command(alice, "interpret", "stop")
        assert "Stopped" in shown(stop), shown(stop)
        await wait_until_true(
            page, "document.getElementById('status').textContent === 'Interpretation ended'", timeout=5
        )
        print(f"overlay: 'Interpretation ended' {time.time() - stopped_at:.2f} s after /interpret stop was sent")
        await wait_until_true(es_page, "document.body.dataset.ended === '1'", timeout=5)


async def visible_lines(page) -> list[dict]:
    return await page.evaluate(
        """() => [...document.querySelectorAll('#captions .line')].map(line => ({
            name: line.querySelector('.name').textContent, text: line.querySelector('.text').textContent,
        }))"""
    )
