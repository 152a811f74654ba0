"""`python -m bot run`: the bot process — listener client with the slash commands, speaker clients, the
interpretation manager (crash recovery at start-up), HTTP health + Prometheus metrics.

Health and metrics listen on HTTP_PORT on all interfaces (HTTP_HOST narrows that, e.g. to 127.0.0.1).
Runs until SIGTERM or SIGINT, then stops every session cleanly (end_task, drain, Palabra session
deleted, speakers released, summaries posted) and closes the clients and the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigurationError

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instance-id", default=None, help="this process's owner id in the database (default: host:pid)"
    )


def main(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from bot.settings import load_settings

    settings = load_settings()
    require_run_settings(settings)
    setup_logging(settings.log_level)
    asyncio.run(run(settings, instance_id=getattr(args, "instance_id", None)))
    return 0


def require_run_settings(settings: Settings) -> None:
    """`run` needs a bot token and Palabra credentials; say which variables are missing."""
    missing = []
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        missing.append("DISCORD_TOKEN (the main bot's token)")
    if not settings.has_palabra_credentials:
        missing.append("PALABRA_CLIENT_ID + PALABRA_CLIENT_SECRET, or PALABRA_API_KEY (Palabra credentials)")
    if missing:
        raise ConfigurationError("cannot run the bot: set " + " and ".join(missing))


class App:
    """Everything `run` starts, in start order; `close()` undoes it in reverse."""

    def __init__(self, settings: Settings, instance_id: str | None = None) -> None:
        self.settings, self.instance_id = settings, instance_id
        self.database: Any = None
        self.rest: Any = None
        self.bot: Any = None
        self.bot_task: asyncio.Task | None = None
        self.speaker_tasks: list[asyncio.Task] = []
        self.manager: Any = None
        self.http: Any = None
        self.metrics: Any = None
        self.started_at = time.monotonic()

    async def start(self) -> None:
        from bot.client import InterpreterBot
        from bot.db import Database, upgrade_to_head
        from bot.metrics import Metrics
        from bot.palabra.credentials import Credentials
        from bot.palabra.rest import PalabraRest
        from bot.services import Services
        from bot.voice import adapter
        from bot.voice.speakers import SpeakerPool

        settings = self.settings
        await upgrade_to_head(settings.database_url)
        self.database = await Database.connect(settings.database_url)
        credentials = Credentials.from_settings(settings)
        self.rest = PalabraRest(credentials, settings.palabra_api_url)
        adapter.point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
        self.metrics = Metrics()
        extras: dict[str, Any] = {"metrics": self.metrics}
        if self.instance_id:
            extras["instance_id"] = self.instance_id
        services = Services(
            settings=settings, database=self.database, credentials=credentials, palabra=self.rest, extras=extras
        )
        self.bot = InterpreterBot(services)
        pool = SpeakerPool()
        from bot.interpretation.manager import InterpretationManager

        self.manager = InterpretationManager(services, self.bot, pool)
        services.interpretation = self.manager
        if settings.http_port:
            from bot.http import HealthServer

            self.http = HealthServer(self.metrics, self.health, host=settings.http_host, port=settings.http_port)
            await self.http.start()
        await self._start_speakers(pool)  # all clients log in together; sessions follow their readiness
        await self._start_listener(settings.discord_token.get_secret_value())
        await self.manager.recover()
        log.info("the bot is running as %s with %d speaker bots", self.bot.user, len(pool.speakers))

    async def _start_listener(self, token: str) -> None:
        self.bot_task = asyncio.create_task(self.bot.start(token), name="listener-bot")
        ready = asyncio.create_task(self.bot.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self.bot_task}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self.bot_task in done and self.bot_task.exception() is not None:
                raise ConfigurationError(
                    f"the bot could not log in to Discord ({type(self.bot_task.exception()).__name__}); "
                    "check DISCORD_TOKEN"
                ) from None
            raise ConfigurationError(f"the bot did not become ready within {READY_TIMEOUT_S:.0f} s")

    async def _start_speakers(self, pool: Any) -> None:
        from bot.voice.speakers import start_speakers

        tokens = [t.get_secret_value() for t in self.settings.speaker_tokens]
        if not tokens:
            return
        self.speaker_tasks = await start_speakers(tokens, pool)
        pool.on_available(lambda: self.metrics.speakers.set(len(pool.ready_speakers())))

    def health(self) -> dict[str, Any]:
        ready = bool(self.bot is not None and self.bot.is_ready() and not self.bot.is_closed())
        speakers = getattr(self.manager, "speaker_pool", None)
        return {
            "ok": ready,
            "discord_ready": ready,
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "sessions": len(self.manager.sessions) if self.manager else 0,
            "speakers_ready": sum(1 for s in getattr(speakers, "speakers", []) if s.is_ready()),
            "speakers_leased": len(speakers.leases()) if speakers is not None else 0,
        }

    async def wait(self, stop: asyncio.Event) -> None:
        """Until a stop signal, or the listener client ends by itself."""
        stopper = asyncio.create_task(stop.wait())
        waiting = {stopper} | ({self.bot_task} if self.bot_task else set())
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if self.bot_task in done and self.bot_task.exception() is not None:
            log.error("the Discord client stopped: %s", type(self.bot_task.exception()).__name__)

    async def close(self) -> None:
        from bot.voice.speakers import SpeakerPool, stop_speakers

        if self.manager is not None:
            with _logged("stopping sessions"):
                await self.manager.close()
        if self.speaker_tasks or self.manager is not None:
            with _logged("stopping speaker bots"):
                await stop_speakers(getattr(self.manager, "speaker_pool", None) or SpeakerPool(), self.speaker_tasks)
        if self.bot is not None:
            with _logged("closing the Discord client"):
                await self.bot.close()
            if self.bot_task is not None:
                self.bot_task.cancel()
                await asyncio.gather(self.bot_task, return_exceptions=True)
        if self.http is not None:
            await self.http.stop()
        if self.rest is not None:
            await self.rest.aclose()
        if self.database is not None:
            await self.database.close()
        log.info("the bot stopped cleanly")


@contextlib.contextmanager
def _logged(what: str):
    try:
        yield
    except Exception:
        log.exception("%s failed", what)


async def run(settings: Settings, instance_id: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(settings, instance_id)
    try:
        if await _started_unless_stopped(app, stop):
            await app.wait(stop)
        log.info("stopping")
    finally:
        await app.close()


async def _started_unless_stopped(app: App, stop: asyncio.Event) -> bool:
    """Start the app; a stop signal during start-up (a Discord login can take a minute) cancels the
    start, and `close()` then undoes what was started. False if stopped before the app was up."""
    starting = asyncio.create_task(app.start(), name="app-start")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if starting.done():
        starting.result()  # a start-up failure propagates
        return True
    log.info("stop signal during start-up; stopping")
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False
