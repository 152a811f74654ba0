"""Health and Prometheus metrics over HTTP (aiohttp): `GET /healthz` (JSON) and `GET /metrics`.

Other features add their routes to the same server as an `HttpExtension` (the caption overlay does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)


class HttpExtension(Protocol):
    """Routes of a feature served by this server; `install` may also hook the app's shutdown."""

    def install(self, app: web.Application) -> None: ...


class HealthServer:
    """`health()` returns a dict with at least "ok" (bool); /healthz answers 200 when ok, else 503."""

    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], dict[str, Any]],
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
        extensions: Sequence[HttpExtension] = (),
    ) -> None:
        self.metrics, self.health, self.host, self.port = metrics, health, host, port
        self.extensions = list(extensions)
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        for extension in self.extensions:
            extension.install(app)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # (host, port[, ...]) of the bound socket
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            body = self.health()
        except Exception as exc:  # a broken probe is itself a health problem, reported, not raised
            log.exception("health check failed")
            body = {"ok": False, "error": type(exc).__name__}
        return web.json_response(body, status=200 if body.get("ok") else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
