"""The overlay served for real: the bot's HTTP server on loopback with the overlay's routes installed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.http import HealthServer
from bot.metrics import Metrics
from bot.overlay.feed import FeedHub
from bot.overlay.service import Overlay, build_overlay
from bot.overlay.tokens import OverlayGrant, TokenSigner
from bot.overlay.web import OverlayWeb, StreamLimits
from tests.fakes.browser import chromium

KEY = b"overlay test key, 32 bytes long!"


@dataclass
class Served:
    server: HealthServer
    web: OverlayWeb
    base_url: str
    overlay: Overlay | None = None


@contextlib.asynccontextmanager
async def serving(web: OverlayWeb, overlay: Overlay | None = None) -> AsyncIterator[Served]:
    server = HealthServer(Metrics(), lambda: {"ok": True}, host="127.0.0.1", port=0, extensions=[web])
    port = await server.start()
    try:
        yield Served(server, web, f"http://127.0.0.1:{port}", overlay)
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def serving_the_bot_overlay(
    settings: Any, database: Any, sessions: Callable[[], Iterable[Any]], limits: StreamLimits
) -> AsyncIterator[Served]:
    """The overlay as `run` wires it (links, key from the database, routes on the bot's HTTP server)."""
    holder: list[HealthServer] = []
    overlay: Overlay = await build_overlay(
        settings, database, sessions, lambda: holder[0].port if holder else None, limits
    )
    async with serving(overlay.web, overlay) as served:
        holder.append(served.server)
        yield served


@dataclass
class Standalone:
    """A feed hub on a fake clock with its routes served, and links signed for it."""

    hub: FeedHub
    signer: TokenSigner
    served: Served
    clock: list[float]

    def link(self, session_id: int = 1, language: str = "en") -> str:
        return f"{self.served.base_url}/overlay/{self.signer.issue(OverlayGrant(session_id, language))}"


@pytest.fixture
async def standalone():
    clock = [1000.0]
    hub = FeedHub(grace_s=60.0, clock=lambda: clock[0], first_seq=lambda: 0)  # ids and keys from 1
    signer = TokenSigner(KEY)
    limits = StreamLimits(connections_per_link=3, heartbeat_s=5.0, retry_ms=200)
    async with serving(OverlayWeb(hub, signer, limits)) as served:
        yield Standalone(hub, signer, served, clock)


@pytest.fixture
async def browser():
    async with chromium() as launched:
        yield launched
