"""The emulator's aiohttp application: REST and WebSocket on one port, plus admin endpoints."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from bot.palabra.emulator import broadcasts, rest, streaming
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.emulator.state import STATE, EmulatorState


def create_app(state: EmulatorState | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = state or EmulatorState()
    rest.add_routes(app)
    broadcasts.add_routes(app)
    streaming.add_routes(app)
    app.router.add_post("/_emulator/config", _update_config)
    app.router.add_get("/_emulator/streams", _list_streams)
    return app


async def _update_config(request: web.Request) -> web.Response:
    try:
        request.app[STATE].config.update(await request.json())
    except (ValueError, json.JSONDecodeError) as exc:
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
    return web.json_response({"ok": True})


async def _list_streams(request: web.Request) -> web.Response:
    streams = [
        {
            "id": s.id,
            "session_id": s.session_id,
            "task": s.task,
            "input_bytes": len(s.input_pcm),
            "messages_in": s.messages_in,
            "messages_out": s.messages_out,
            "close_code": s.close_code,
            "closed": s.closed_at is not None,
        }
        for s in request.app[STATE].streams
    ]
    return web.json_response({"streams": streams, "sessions": len(request.app[STATE].sessions)})


class RunningEmulator:
    def __init__(self, state: EmulatorState, runner: web.AppRunner, port: int, host: str) -> None:
        self.state, self.runner, self.port, self.host = state, runner, port, host

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_base_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def serve(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningEmulator]:
    """Run the emulator in this event loop (port 0 = a free port) for the duration of the block."""
    state = EmulatorState(config)
    runner = web.AppRunner(create_app(state), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = int(runner.addresses[0][1])  # (host, port, ...) of the bound socket
    try:
        yield RunningEmulator(state, runner, bound_port, host)
    finally:
        await runner.cleanup()
