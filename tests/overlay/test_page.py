"""The overlay page in a real browser (Debian's Chromium): text only ever as text, the query options,
reconnecting without skipping, the end, and a 404 for a tampered link. Feeds are driven directly here;
test_live_session.py runs a whole session through the fake Discord and the emulator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bot.interpretation.captions import CaptionUpdate
from tests.fakes.browser import wait_until_true
from tests.fakes.waiting import ConditionTimeout, wait_until

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "overlay.png"
MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold?</b>'


def publish(hub, tid: str, text: str, final: bool = True, speaker: str = "Alice") -> None:
    hub.caption_updated(CaptionUpdate(1, tid, None, text, final, speaker, 0.0))


async def shown_lines(page) -> list[dict]:
    return await page.evaluate(
        """() => [...document.querySelectorAll('#captions .line')].map(line => ({
            name: line.querySelector('.name').textContent,
            text: line.querySelector('.text').textContent,
            final: !line.classList.contains('partial'),
        }))"""
    )


async def wait_shown(page, predicate, what: str, timeout: float = 5.0) -> list[dict]:
    seen: list[dict] = []

    async def matching() -> tuple[list[dict]] | None:
        seen[:] = await shown_lines(page)
        return (list(seen),) if predicate(seen) else None  # a tuple: an empty page may be what is awaited

    try:
        (lines,) = await wait_until(matching, timeout, what=f"the page to show {what}")
    except ConditionTimeout as exc:
        raise ConditionTimeout(f"{exc}; it shows {seen}") from None
    return lines


async def open_page(browser, url: str):
    page = await browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = await page.goto(url)
    return page, response, requests, errors


async def test_markup_in_a_line_is_shown_as_text_and_runs_nothing(standalone, browser):
    standalone.hub.watch(1, "en", [])
    page, response, requests, errors = await open_page(browser, standalone.link())
    assert response.status == 200
    publish(standalone.hub, "a", MARKUP, final=False, speaker="<i>Mallory</i>")
    await wait_shown(page, lambda lines: lines and lines[0]["text"] == MARKUP, "the partial")
    publish(standalone.hub, "a", MARKUP + " done", final=True, speaker="<i>Mallory</i>")
    [line] = await wait_shown(page, lambda lines: lines and lines[0]["final"], "the final")
    assert line == {"name": "<i>Mallory</i>", "text": MARKUP + " done", "final": True}
    assert await page.locator("img, script:not([src]), b, i").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert not [url for url in requests if url.endswith("/x")]
    assert errors == []


async def test_query_options_lines_size_position_and_names(standalone, browser):
    standalone.hub.watch(1, "en", [])
    for index in range(4):
        publish(standalone.hub, f"t{index}", f"line {index}")
    page, _, _, _ = await open_page(browser, standalone.link() + "?lines=2&size=30&position=top&names=0")
    lines = await wait_shown(page, lambda lines: lines and lines[-1]["text"] == "line 3", "the last line")
    assert [line["text"] for line in lines] == ["line 2", "line 3"] and {line["name"] for line in lines} == {""}
    assert await page.evaluate("document.body.dataset.position") == "top"
    assert await page.evaluate("getComputedStyle(document.querySelector('.line')).fontSize") == "30px"
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgba(0, 0, 0, 0)"

    defaults, _, _, _ = await open_page(browser, standalone.link() + "?lines=oops&size=-5&position=sideways")
    lines = await wait_shown(defaults, lambda lines: len(lines) == 3, "three lines (the default)")
    assert [line["name"] for line in lines] == ["Alice"] * 3
    assert await defaults.evaluate("document.body.dataset.position") == "bottom"
    assert await defaults.evaluate("getComputedStyle(document.querySelector('.line')).fontSize") == "12px"


async def test_a_dropped_stream_reconnects_and_resumes_without_skipping_then_shows_the_end(standalone, browser):
    hub, web = standalone.hub, standalone.served.web
    hub.watch(1, "en", [])
    page, _, _, _ = await open_page(browser, standalone.link() + "?lines=10")
    publish(hub, "a", "one")
    await wait_shown(page, lambda lines: [line["text"] for line in lines] == ["one"], "the first line")
    web.drop_streams()
    # Published in the same step as the drop: the old stream ends without sending them, so only the
    # reconnect (with Last-Event-ID) can bring them.
    publish(hub, "a", "one, corrected")
    publish(hub, "b", "two")
    publish(hub, "c", "three", final=False)
    lines = await wait_shown(page, lambda lines: len(lines) == 3, "every line after the reconnect")
    assert [(line["text"], line["final"]) for line in lines] == [
        ("one, corrected", True),
        ("two", True),
        ("three", False),
    ]
    assert web.resumed == 1
    hub.session_ended(1)
    await wait_until_true(page, "document.getElementById('status').textContent === 'Interpretation ended'")
    assert await page.locator("#status").is_visible()
    assert len(await shown_lines(page)) == 3  # the last lines stay on screen


async def test_a_tampered_link_is_a_404_in_the_browser(standalone, browser):
    standalone.hub.watch(1, "en", [])
    link = standalone.link()
    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    page, response, _, _ = await open_page(browser, tampered)
    assert response.status == 404
    assert await page.evaluate("document.body.innerText") == "404: Not Found"


async def test_screenshot_of_captions_as_obs_composites_them(standalone, browser, tmp_path):
    """Saved for the test artifacts (path printed); UPDATE_DOCS_SCREENSHOT=1 also refreshes docs/overlay.png."""
    standalone.hub.watch(1, "en", [])
    publish(standalone.hub, "a", "Welcome, everyone, to tonight's community call.", speaker="Alice")
    publish(standalone.hub, "b", "Thanks! Can everyone hear me all right?", speaker="Bob")
    publish(standalone.hub, "c", "Loud and clear. Let's start with the", final=False, speaker="Alice")
    page = await browser.new_page(viewport={"width": 1280, "height": 300})
    await page.goto(standalone.link() + "?lines=3&size=40")
    await wait_shown(page, lambda lines: len(lines) == 3, "three lines")
    screenshot = tmp_path / "overlay.png"
    await page.screenshot(path=str(screenshot), omit_background=True)  # transparent, as OBS gets it
    print(f"overlay screenshot: {screenshot}")
    assert screenshot.stat().st_size > 1000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


async def test_a_refused_reconnect_is_retried_by_the_page_and_still_resumes_without_skipping(standalone, browser):
    """Too many streams on the link when the page came back: EventSource gives up on a 429, the page
    does not (it opens a fresh stream later, passing the last id it had)."""
    import contextlib

    import httpx

    hub, web = standalone.hub, standalone.served.web
    hub.watch(1, "en", [])
    link = standalone.link()
    page, _, _, _ = await open_page(browser, link + "?lines=10")
    publish(hub, "a", "one")
    await wait_shown(page, lambda lines: len(lines) == 1, "the first line")
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as others:
        web.drop_streams()
        hogs = [await others.enter_async_context(http.stream("GET", f"{link}/events")) for _ in range(3)]
        assert [hog.status_code for hog in hogs] == [200, 200, 200]  # the link's whole budget
        await wait_until_true(page, "document.getElementById('status').textContent === 'Reconnecting…'")
        publish(hub, "b", "two")
    publish(hub, "c", "three")  # wakes the closed streams so the server frees their places
    lines = await wait_shown(page, lambda lines: len(lines) == 3, "every line after the retry", timeout=10)
    assert [line["text"] for line in lines] == ["one", "two", "three"]
    assert await page.evaluate("document.getElementById('status').hidden")
