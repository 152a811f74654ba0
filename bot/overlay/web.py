"""The overlay's HTTP side (aiohttp): the page, its Server-Sent Events stream and its two static files.

    GET /overlay/<token>          the page (HTML; the script reads its options from the query string)
    GET /overlay/<token>/events   text/event-stream: `line` events (id = the feed's sequence number), one
                                  `end` event; a reconnect's Last-Event-ID (or `?last=`) resumes after
                                  what it had
    GET /overlay/static/<file>    overlay.css, overlay.js

A link whose session a restarted bot is still resuming (after a crash) is served, and its event stream
waits for the resumed session. A wrong, tampered or expired token is a plain 404, the same as any other
unknown path. Every response carries a Content-Security-Policy that allows only this origin's script,
style and event stream, so even a transcript that slipped into markup could not run. Streams per link
are bounded; each stream ends after `stream_lifetime_s` (the page reconnects and resumes), so no
connection outlives its purpose.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot.overlay.feed import CaptionFeed, FeedHub, FeedLine
from bot.overlay.tokens import OverlayGrant, TokenSigner

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'none'; "
    "font-src 'none'; media-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the link is the credential: never pass it on
    "Cache-Control": "no-store",
}
STATIC_TYPES = {"overlay.css": "text/css", "overlay.js": "text/javascript"}
RESUME_POLL_S = 0.25  # how often a stream waiting for a resume looks again (a rare, short wait)
TOKEN_PATTERN = r"[A-Za-z0-9_\-]{1,120}\.[A-Za-z0-9_\-]{1,60}"


@dataclass(frozen=True)
class StreamLimits:
    connections_per_link: int = 4  # an OBS source, a preview, a phone: more is someone sharing the link
    connections_total: int = 500
    heartbeat_s: float = 15.0  # a comment line keeps proxies from closing an idle stream
    stream_lifetime_s: float = 600.0
    retry_ms: int = 1000  # EventSource's reconnect delay


class OverlayWeb:
    """Installs the overlay's routes on the bot's HTTP server (an `HttpExtension` of bot.http)."""

    def __init__(
        self,
        hub: FeedHub,
        signer: TokenSigner,
        limits: StreamLimits | None = None,
        follow: Callable[[int], bool] | None = None,
        resuming: Callable[[int], bool] | None = None,
    ) -> None:
        self.hub, self.signer = hub, signer
        # For a link whose session the hub does not know: True once the session resuming it (after a
        # crash) is followed, so the hub knows it now (OverlayService.follow).
        self.follow = follow
        # True while this process is still to resume that session: not followed yet (it may yet give up).
        self.resuming = resuming
        self.limits = limits or StreamLimits()
        self._open: Counter[str] = Counter()
        self._wakers: set[asyncio.Event] = set()
        self._generation = 0  # bumped by drop_streams(): streams of an older generation end
        self._closing = False
        self._page = (STATIC / "overlay.html").read_bytes()
        self._static = {name: (STATIC / name).read_bytes() for name in STATIC_TYPES}
        self.resumed = 0  # streams that came back with a Last-Event-ID (tests and logs read it)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/overlay/static/{name}", self._static_file)
        app.router.add_get("/overlay/{token:" + TOKEN_PATTERN + "}", self._page_handler)
        app.router.add_get("/overlay/{token:" + TOKEN_PATTERN + "}/events", self._events)
        app.on_shutdown.append(self._on_shutdown)

    def drop_streams(self) -> None:
        """End every open stream now (pages reconnect and resume); the server keeps serving."""
        self._generation += 1
        for event in self._wakers:
            event.set()

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing = True
        self.drop_streams()

    # --- handlers -------------------------------------------------------------------------------
    def _feed(self, grant: OverlayGrant) -> CaptionFeed | None:
        feed = self.hub.feed(grant.session_id, grant.language)
        if feed is None and self.follow is not None and self.follow(grant.session_id):
            feed = self.hub.feed(grant.session_id, grant.language)
        return feed

    def _being_resumed(self, grant: OverlayGrant) -> bool:
        return self.resuming is not None and self.resuming(grant.session_id)

    def _servable(self, grant: OverlayGrant | None) -> bool:
        """A genuine link whose session is known here, or is being resumed (else: a plain 404)."""
        return grant is not None and (self._feed(grant) is not None or self._being_resumed(grant))

    async def _feed_once_resumed(self, request: web.Request, grant: OverlayGrant) -> CaptionFeed | None:
        """The link's feed; for a session still being resumed, once the resumed one is followed. None if
        the resume gave up, the streams were dropped (drop_streams, shutdown) or the client went away:
        aiohttp does not cancel a handler whose client left, and this wait writes nothing that would fail,
        so it looks at the connection itself (else the gone client would keep its place in the limit)."""
        generation = self._generation
        feed = self._feed(grant)
        while feed is None and self._being_resumed(grant) and generation == self._generation:
            if request.transport is None or request.transport.is_closing():
                return None
            await asyncio.sleep(RESUME_POLL_S)
            feed = self._feed(grant)
        return feed

    async def _page_handler(self, request: web.Request) -> web.Response:
        grant = self.signer.verify(request.match_info["token"])
        if not self._servable(grant):
            return not_found()
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static:
            return not_found()
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return web.Response(body=self._static[name], content_type=STATIC_TYPES[name], charset="utf-8", headers=headers)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        grant = self.signer.verify(token)
        if grant is None or self._closing or not self._servable(grant):
            return not_found()
        if self._open[token] >= self.limits.connections_per_link or self._open.total() >= self.limits.connections_total:
            log.info("overlay: a stream was refused, the link already has %d open", self._open[token])
            return web.Response(status=429, text="Too many open connections for this link.", headers=SECURITY_HEADERS)
        last_seen = last_event_id(request)
        if last_seen is not None:
            self.resumed += 1
        self._open[token] += 1
        try:
            feed = await self._feed_once_resumed(request, grant)
            if feed is None or self._closing:
                return not_found()
            return await self._stream(request, feed, last_seen or 0)
        finally:
            self._open[token] -= 1
            if self._open[token] <= 0:
                del self._open[token]

    async def _stream(self, request: web.Request, feed: CaptionFeed, seen: int) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        generation, waker = self._generation, feed.waiter()
        self._wakers.add(waker)
        deadline = asyncio.get_running_loop().time() + self.limits.stream_lifetime_s
        try:
            await response.write(f"retry: {self.limits.retry_ms}\n\n".encode())
            while generation == self._generation:
                waker.clear()
                lines = feed.lines_after(seen)
                events = [line_event(line) for line in lines]
                seen = lines[-1].seq if lines else seen
                if feed.ended_seq is not None and feed.ended_seq > seen:
                    events.append(f"id: {feed.ended_seq}\nevent: end\ndata: {{}}\n\n")
                    seen = feed.ended_seq
                if events:
                    await response.write("".join(events).encode())
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                if not await wait_set(waker, min(self.limits.heartbeat_s, remaining)):
                    await response.write(b": keep-alive\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the page went away
        finally:
            feed.release(waker)
            self._wakers.discard(waker)
        return response


def line_event(line: FeedLine) -> str:
    data = json.dumps({"k": line.key, "text": line.text, "final": line.final, "speaker": line.speaker})
    return f"id: {line.seq}\nevent: line\ndata: {data}\n\n"


def last_event_id(request: web.Request) -> int | None:
    """EventSource's own reconnects send the header; the page's fresh connections pass `?last=`."""
    value = (request.headers.get("Last-Event-ID") or request.query.get("last") or "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def not_found() -> web.Response:
    return web.Response(status=404, text="404: Not Found", headers=SECURITY_HEADERS)
