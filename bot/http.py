"""Health and Prometheus metrics over HTTP (aiohttp): `GET /healthz` (JSON) and `GET /metrics`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics

log = logging.getLogger(__name__)


class HealthServer:
    """`health()` returns a dict with at least "ok" (bool); /healthz answers 200 when ok, else 503."""

    def __init__(
        self, metrics: Metrics, health: Callable[[], dict[str, Any]], *, host: str = "0.0.0.0", port: int = 8080
    ) -> None:
        self.metrics, self.health, self.host, self.port = metrics, health, host, port
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
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
