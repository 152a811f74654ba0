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
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING

from bot.errors import BotError, ConfigurationError
from bot.tasks import cancel_and_wait, pending_tasks

if TYPE_CHECKING:
    from bot.client import InterpreterBot
    from bot.db.engine import Database
    from bot.http import HealthServer
    from bot.interpretation.manager import InterpretationManager
    from bot.metrics import Metrics
    from bot.ownership import Ownership
    from bot.palabra.rest import PalabraRest
    from bot.settings import Settings
    from bot.voice.speakers import SpeakerPool

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
# Shutdown steps that wait on a peer (Discord, the database) are cut short after this (and say so), so a
# stop never hangs on one of them. SLOW_STEP_S: a step this slow is logged too.
CLOSE_STEP_TIMEOUT_S = 10.0
SLOW_STEP_S = 2.0
SLOW_SHUTDOWN_S = 8.0  # then the shutdown logs what it is waiting on


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instance-id",
        default=None,
        help="this process's owner id in the database (default: host:pid:run-token); a restart under the same "
        "id takes its previous run's shards over at once, so give one only where one process runs per id",
    )


def main(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from bot.settings import load_settings

    settings = load_settings()
    require_run_settings(settings)
    setup_logging(settings.log_level)
    asyncio.run(run(settings, instance_id=args.instance_id))
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
    from bot.shards import check_run_shards

    check_run_shards(settings)


class App:
    """Everything `run` starts, in start order; `close()` undoes it in reverse."""

    def __init__(self, settings: Settings, instance_id: str | None = None) -> None:
        self.settings, self.instance_id = settings, instance_id
        self.database: Database | None = None
        self.rest: PalabraRest | None = None
        self.bot: InterpreterBot | None = None
        self.bot_task: asyncio.Task[None] | None = None
        self.pool: SpeakerPool | None = None
        self.speaker_tasks: list[asyncio.Task[None]] = []
        self.manager: InterpretationManager | None = None
        self.http: HealthServer | None = None
        self.metrics: Metrics | None = None
        self.ownership: Ownership | None = None
        self.started_at = time.monotonic()
        self.started = False  # start() completed

    async def start(self) -> None:
        """Build the whole graph (database, Palabra client, services, clients), then connect it."""
        from bot.broadcasts.service import BroadcastService
        from bot.client import InterpreterBot
        from bot.db.engine import Database
        from bot.db.migrate import upgrade_to_head
        from bot.db.sessions import default_instance_id
        from bot.http import HealthServer
        from bot.interpretation.manager import InterpretationManager
        from bot.metrics import Metrics
        from bot.overlay.service import build_overlay
        from bot.ownership import Ownership
        from bot.palabra.credentials import Credentials
        from bot.palabra.rest import PalabraRest
        from bot.services import Core, Options, Services
        from bot.shards import check_run_shards
        from bot.voice import adapter
        from bot.voice.speakers import SpeakerPool

        settings = self.settings
        plan = check_run_shards(settings)
        self.instance_id = self.instance_id or default_instance_id()
        await upgrade_to_head(settings.database_url)
        self.database = await Database.connect(settings.database_url)
        # Before the clients connect: no session of ours exists yet, and a live rival on our shards
        # stops the start here.
        self.ownership = Ownership(self.database, plan, self.instance_id, interval_s=settings.heartbeat_seconds)
        taken = await self.ownership.claim()
        self.ownership.start_heartbeat()  # from now on: logging in to Discord can take a while
        credentials = Credentials.from_settings(settings)
        assert credentials is not None, "require_run_settings checked them"
        self.rest = PalabraRest(credentials, settings.palabra_api_url)
        adapter.point_discord_py_at(settings.discord_api_base, settings.discord_gateway_url)
        self.metrics = Metrics(instance_id=self.instance_id, shard_ids=plan.ids, shard_count=plan.count)
        core = Core(
            settings, self.database, credentials, self.rest, self.metrics, Options(instance_id=self.instance_id)
        )
        pool = self.pool = SpeakerPool()

        # The caption overlay is served by the HTTP server, so it exists only when that server does.
        overlay = (
            await build_overlay(
                settings,
                self.database,
                lambda: self.manager.sessions.values() if self.manager is not None else (),
                lambda: self.http.port if self.http is not None else None,
                resuming=lambda session_id: self.manager is not None and self.manager.resuming(session_id),
            )
            if settings.http_port
            else None
        )

        def services_for(listener: InterpreterBot) -> Services:
            self.manager = InterpretationManager(core, listener, pool)
            return Services(
                core,
                interpretation=self.manager,
                broadcasts=BroadcastService(core),
                speakers=pool,
                overlay=overlay.service if overlay is not None else None,
            )

        self.bot = InterpreterBot(services_for, shards=plan)
        assert self.manager is not None, "InterpreterBot builds its services at once"
        self.manager.expect_resumes(taken)  # overlay links of these wait from the moment the server is up
        self.metrics.listener = self.bot
        if settings.http_port:
            extensions = [overlay.web] if overlay is not None else []
            self.http = HealthServer(
                self.metrics, self.health, host=settings.http_host, port=settings.http_port, extensions=extensions
            )
            await self.http.start()
        assert settings.discord_token is not None, "require_run_settings checked it"
        await self._start_speakers(pool)  # all clients log in together; sessions follow their readiness
        await self._start_listener(self.bot, settings.discord_token.get_secret_value())
        assert self.manager is not None
        await self.manager.recover(taken)
        self.started = True
        log.info(
            "the bot is running as %s with %d speaker bots, %s",
            self.bot.user,
            len(pool.speakers),
            self.ownership.describe(),
        )

    async def _start_listener(self, bot: InterpreterBot, token: str) -> None:
        self.bot_task = asyncio.create_task(bot.start(token), name="listener-bot")
        ready = asyncio.create_task(bot.wait_until_ready())
        try:
            done, _ = await asyncio.wait(
                {ready, self.bot_task}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ready.cancel()
        if ready in done:
            return
        failure = self.bot_task.exception() if self.bot_task in done and not self.bot_task.cancelled() else None
        if failure is not None:
            raise login_failure(failure, self.settings.discord_api_base) from None
        raise ConfigurationError(
            f"the bot did not become ready within {READY_TIMEOUT_S:.0f} s: Discord at "
            f"{self.settings.discord_api_base} accepted the connection but did not answer in time"
        )

    async def _start_speakers(self, pool: SpeakerPool) -> None:
        from bot.voice.speakers import start_speakers

        tokens = [t.get_secret_value() for t in self.settings.speaker_tokens]
        if not tokens:
            return
        plan = self.ownership.plan if self.ownership is not None else None
        self.speaker_tasks = await start_speakers(tokens, pool, client_kwargs=plan.client_kwargs() if plan else None)
        metrics = self.metrics
        if metrics is not None:
            pool.on_available(lambda: metrics.speakers.set(len(pool.ready_speakers())))

    def health(self) -> dict[str, object]:
        ready = bool(self.bot is not None and self.bot.is_ready() and not self.bot.is_closed())
        speakers = self.pool.speakers if self.pool is not None else []
        plan = self.ownership.plan if self.ownership is not None else None
        return {
            "ok": ready,
            "discord_ready": ready,
            "instance_id": self.instance_id,
            "shard_ids": list(plan.ids) if plan else [],
            "shard_count": plan.count if plan else None,
            "shards": _shard_health(self.bot, plan.ids) if plan and self.bot is not None else {},
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "sessions": len(self.manager.sessions) if self.manager else 0,
            "speakers_ready": sum(1 for s in speakers if s.is_ready()),
            "speakers_leased": len(self.pool.leases()) if self.pool is not None else 0,
        }

    async def wait(self, stop: asyncio.Event) -> None:
        """Until a stop signal, or the listener client ends by itself."""
        stopper = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(self.ownership.lost.wait()) if self.ownership is not None else None
        waiting = {stopper} | ({lost} if lost else set()) | ({self.bot_task} if self.bot_task else set())
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if lost is not None:
            lost.cancel()
        if self.bot_task is not None and self.bot_task in done and not self.bot_task.cancelled():
            failure = self.bot_task.exception()
            if failure is not None:
                log.error("the Discord client stopped: %s", type(failure).__name__)

    async def close(self) -> None:
        watchdog = asyncio.create_task(_report_slow_shutdown(SLOW_SHUTDOWN_S), name="shutdown-watchdog")
        try:
            await self._close()
        finally:
            watchdog.cancel()

    async def _close(self) -> None:
        from bot.voice.speakers import SpeakerPool, stop_speakers

        if self.manager is not None:
            with _logged("stopping sessions"):
                await self.manager.close()  # bounded by the manager: each session drains its tail
        if self.speaker_tasks or self.pool is not None:
            pool = self.pool or SpeakerPool()
            await _bounded("stopping speaker bots", stop_speakers(pool, self.speaker_tasks), CLOSE_STEP_TIMEOUT_S)
        if self.bot is not None:
            await _bounded("closing the Discord client", self.bot.close(), CLOSE_STEP_TIMEOUT_S)
            if self.bot_task is not None:
                await cancel_and_wait(self.bot_task, log_errors=False)  # its failure is what start-up reports
        if self.http is not None:
            await _bounded("stopping the HTTP server", self.http.stop(), CLOSE_STEP_TIMEOUT_S)
        if self.rest is not None:
            await self.rest.aclose()
        if self.ownership is not None:  # a database write: a database down at shutdown must not hang it
            await _bounded("unregistering the instance", self.ownership.close(), CLOSE_STEP_TIMEOUT_S)
        if self.database is not None:
            await _bounded("closing the database", self.database.close(), CLOSE_STEP_TIMEOUT_S)
        log.info("the bot stopped cleanly" if self.started else "the bot stopped (it had not finished starting)")


def _shard_health(bot: InterpreterBot, shard_ids: tuple[int, ...]) -> dict[str, object]:
    """Per shard of the listener: connected, gateway latency, guilds (keys are shard ids as text)."""
    from bot.metrics import shard_latency_s

    report: dict[str, object] = {}
    for shard_id in shard_ids:
        shard = bot.get_shard(shard_id)
        latency = shard_latency_s(shard)
        report[str(shard_id)] = {
            "ready": bool(shard is not None and not shard.is_closed()),
            "latency_ms": round(latency * 1000, 1) if latency is not None else None,
            "guilds": sum(1 for guild in bot.guilds if guild.shard_id == shard_id),
        }
    return report


async def _report_slow_shutdown(after_s: float) -> None:
    """A shutdown still running after `after_s` says what it is waiting on (once)."""
    await asyncio.sleep(after_s)
    log.warning("the shutdown is taking over %g s; waiting on: %s", after_s, "; ".join(pending_tasks()) or "nothing")


async def _bounded(what: str, step: Awaitable[None], timeout: float) -> None:
    """A shutdown step that may wait on Discord: at most `timeout`, then the shutdown goes on (and says
    so), so a stop signal always ends the process within the orchestrator's grace period."""
    started = time.monotonic()
    with _logged(what):
        try:
            await asyncio.wait_for(step, timeout)
        except TimeoutError:
            log.warning("%s did not finish within %g s; going on", what, timeout)
            return
    took = time.monotonic() - started
    if took > SLOW_STEP_S:
        log.info("%s took %.1f s", what, took)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except Exception:
        log.exception("%s failed", what)


async def run(settings: Settings, instance_id: str | None = None) -> None:
    """Start, serve until SIGTERM/SIGINT, stop cleanly. A stop signal during start-up cancels the start
    (a Discord login that hangs, a database that does not answer) and still closes what was opened; a
    start-up error is reported before anything is closed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(settings, instance_id)
    try:
        if await _started_unless_stopped(app, stop):
            await app.wait(stop)
        log.info("stopping")
    except BaseException as exc:
        if not app.started:
            log.error("start-up failed: %s", exc if isinstance(exc, BotError) else type(exc).__name__)
        raise
    finally:
        await app.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if app.ownership is not None and app.ownership.lost.is_set():
        raise app.ownership.lost_error()


async def _started_unless_stopped(app: App, stop: asyncio.Event) -> bool:
    """True once `app.start()` completed; False if a stop signal came first (the start is cancelled)."""
    starting = asyncio.create_task(app.start(), name="start-up")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if starting.done():
        starting.result()  # a start-up error is raised here
        return True
    log.info("stop signal during start-up: cancelling the start")
    await cancel_and_wait(starting)
    return False


def login_failure(error: BaseException, api_base: str) -> ConfigurationError:
    """Whether Discord refused the token or could not be reached (the token itself is never shown)."""
    import aiohttp  # here, not at the top: the CLI imports this module just to build its parser
    import discord

    if isinstance(error, discord.LoginFailure) or (isinstance(error, discord.HTTPException) and error.status == 401):
        return ConfigurationError("Discord rejected DISCORD_TOKEN; copy the bot's token again (Developer Portal → Bot)")
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return ConfigurationError(f"Discord refused the bot's gateway intents: {error}")
    if isinstance(error, (OSError, asyncio.TimeoutError, aiohttp.ClientError, discord.GatewayNotFound)):
        return ConfigurationError(
            f"the bot could not reach Discord at DISCORD_API_BASE={api_base} ({type(error).__name__}); "
            "check the network and DNS"
        )
    if isinstance(error, discord.HTTPException):
        return ConfigurationError(f"Discord answered the login with HTTP {error.status}; try again later")
    return ConfigurationError(f"the bot could not log in to Discord ({type(error).__name__})")
