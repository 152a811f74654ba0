"""The interpretation sessions of this process: what the slash commands call.

One session per source voice channel. `start` joins the listener, posts the consent notice, starts the
Palabra stream with the server's settings, places each target language (a speaker bot in its sibling
channel; else same-channel playback for one language and text only for the rest, each with the reason)
and returns a `StartReport`. `stop` (or an auto-stop: empty channel, maximum duration, the bot kicked or
moved) ends the stream, drains the tail, deletes the Palabra session, releases the speakers and posts a
summary with the transcript as .txt and .srt.

The manager orchestrates; the parts live in modules of their own: `channels` (permissions, consent,
transcript sink), `placing` + `leasing` (speaker bots), `palabra_sessions` (every Palabra session id is
written to the database before the stream uses it), `recovery` (at start-up: the sessions of a crashed
process), `housekeeping` (heartbeat, retention purge), `store` (transcript lines to the database) and
`summary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import discord

from bot.db import privacy
from bot.db import sessions as db_sessions
from bot.db.sessions import default_instance_id
from bot.interpretation.availability import SessionPlacements, SpeakerKeeper
from bot.interpretation.errors import (
    InterpretationError,
    NoActiveSession,
    NotInVoiceChannel,
    SessionAlreadyRunning,
    ShuttingDown,
    StillStarting,
)
from bot.interpretation.housekeeping import Housekeeping
from bot.interpretation.languages import check_languages
from bot.interpretation.leasing import SpeakerLeases
from bot.interpretation.palabra_sessions import PalabraSessions
from bot.interpretation.ports import ListenerVoice
from bot.interpretation.recovery import CrashedSession, Recovery
from bot.interpretation.reports import Placement, PlacementKind, SessionStatus, StartReport, StopReport
from bot.interpretation.running import RunningSession
from bot.interpretation.session import LiveSession, humans_in
from bot.interpretation.starting import Requested, SessionStarter, end_row, start_failure
from bot.interpretation.summary import post_summary
from bot.metrics import Metrics
from bot.shards import ShardPlan, shard_of
from bot.voice import playback
from bot.voice.speakers import LEAVE_TIMEOUT, SpeakerPool, leave

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.services import Core

__all__ = [
    "InterpretationManager",
    "Placement",
    "PlacementKind",
    "SessionStatus",
    "StartReport",
    "StopReport",
    "check_languages",
]

log = logging.getLogger(__name__)

SHUTDOWN_WAIT_S = 15.0


class InterpretationManager:
    def __init__(self, core: Core, listener: discord.Client, speaker_pool: SpeakerPool | None = None) -> None:
        self.core = core
        self.listener = listener
        self.instance_id: str = core.options.instance_id or default_instance_id()
        self.metrics: Metrics = core.metrics
        self.speaker_pool = speaker_pool if speaker_pool is not None else SpeakerPool()
        self.leases = SpeakerLeases(self.speaker_pool, core.database, self.instance_id)
        self.palabra = PalabraSessions(core.palabra, core.database, self.metrics)
        self.housekeeping = Housekeeping(core.database, self.instance_id)
        self.starter = SessionStarter(
            core, listener, instance_id=self.instance_id, leases=self.leases, palabra=self.palabra
        )
        credentials = core.credentials
        self.recovery = Recovery(
            core.database,
            self.palabra,
            self.instance_id,
            ShardPlan.of(core.settings),
            lists_sessions=core.palabra is not None and (credentials is None or credentials.kind != "api_key"),
        )
        self.sessions: dict[int, RunningSession] = {}  # source channel id -> running session
        self.metrics.sessions_paused.set_function(self._palabra_paused_count)  # read at each scrape
        self._starting: dict[int, int] = {}  # channel id -> guild id, while a start is under way
        self._stop_when_started: dict[int, str] = {}  # channel id -> stop reason asked for during its start
        self._starts_done = asyncio.Event()  # set whenever no start is under way (close waits for it)
        self._starts_done.set()
        self._closing = False
        self._stopping: dict[int, asyncio.Task[StopReport]] = {}
        self._keepers: dict[int, SpeakerKeeper] = {}  # source channel id -> its session's speaker keeper
        self._resumes_due: set[int] = set()  # crashed sessions recover() is still to resume (expect_resumes)

    # --- public API ------------------------------------------------------------------------------
    async def start(
        self,
        *,
        guild: discord.Guild,
        voice_channel: discord.VoiceChannel | discord.StageChannel | None,
        requested_by: discord.Member | discord.User | None,
        source: str | None = None,
        targets: list[str] | None = None,
    ) -> StartReport:
        requested = Requested(
            started_by_id=requested_by.id if requested_by is not None else None,
            started_by_name=(requested_by.display_name if requested_by is not None else None) or "a member",
            source=source,
            targets=tuple(targets or ()),
        )
        return await self._start(guild, voice_channel, requested)

    async def stop(self, *, guild_id: int, channel_id: int | None = None, reason: str = "stopped") -> StopReport:
        try:
            running = self._find(guild_id, channel_id)
        except NoActiveSession:
            starting = [c for c, g in self._starting.items() if g == guild_id and channel_id in (None, c)]
            if not starting:
                raise
            self._stop_when_started[starting[0]] = reason  # stopped the moment its start completes
            raise StillStarting() from None
        return await self._stop(running, reason)

    def status(self, guild_id: int) -> list[SessionStatus]:
        shard = (shard_of(guild_id, self.core.settings.shard_count), self.core.settings.shard_count)
        return [
            _status_of(running, self.instance_id, shard)
            for running in self.sessions.values()
            if running.guild.id == guild_id
        ]

    async def set_user_opted_out(self, guild_id: int | None, user_id: int, opted_out: bool) -> None:
        """Apply a privacy choice to the live mixers at once (the database is the cog's business)."""
        for running in list(self.sessions.values()):
            if guild_id is not None and running.guild.id != guild_id:
                continue
            mixer = running.live.mixer
            if opted_out:
                mixer.exclude(user_id)
            elif not await self._still_opted_out(running.guild.id, user_id):
                mixer.include(user_id)

    def expect_resumes(self, taken: Sequence[CrashedSession]) -> None:
        """Until recover() has dealt with them, these crashed sessions (and those they continued) count
        as `resuming`: their overlay links wait for the resumed session instead of being refused."""
        self._resumes_due.update(session_id for row in taken for session_id in row.lineage)

    def resuming(self, session_id: int) -> bool:
        return session_id in self._resumes_due

    async def recover(self, taken: Sequence[CrashedSession] | None = None) -> None:
        """Close what a crashed process left on our shards, then resume where people are still listening.

        `taken`: the sessions bot.ownership took over at start-up; None takes them over here.
        """
        try:
            crashed = await self.recovery.close_crashed(taken)
            self.expect_resumes(crashed)
            await self.recovery.delete_untracked(pid for r in self.sessions.values() for pid in r.rest.created)
            await self.purge_expired_transcripts()
            self.housekeeping.ensure_running()
            for row in crashed:
                try:
                    await self._resume(row)
                finally:
                    self._resumes_due.difference_update(row.lineage)
        finally:
            self._resumes_due.clear()

    async def purge_expired_transcripts(self) -> int:
        """Keep the consent notice's promise: lines older than the guild's retention are deleted."""
        return await self.housekeeping.purge_expired_transcripts()

    async def close(self) -> None:
        """Refuse new starts, let the ones under way finish (bounded), then stop every session."""
        self._closing = True
        if not self._starts_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._starts_done.wait(), SHUTDOWN_WAIT_S)
        for running in list(self.sessions.values()):
            try:
                await self._stop(running, "shutdown")
            except Exception:
                log.exception("stopping session %s at shutdown failed", running.session_id)
        await self.housekeeping.close()

    # --- starting ---------------------------------------------------------------------------------
    async def _start(self, guild: discord.Guild, voice_channel: object, requested: Requested) -> StartReport:
        if not isinstance(voice_channel, (discord.VoiceChannel, discord.StageChannel)):
            raise NotInVoiceChannel()
        channel_id = voice_channel.id
        await self._await_shutdowns(guild.id)
        if self._closing:
            raise ShuttingDown()
        if channel_id in self.sessions or channel_id in self._starting or channel_id in self._stopping:
            raise SessionAlreadyRunning()
        if (
            any(r.guild.id == guild.id for r in self.sessions.values())
            or guild.voice_client is not None
            or guild.id in self._starting.values()
        ):
            raise SessionAlreadyRunning(
                "Interpretation is already running in another voice channel of this server "
                "(the bot can be in one voice channel per server); stop it first with /interpret stop."
            )
        self._starting[channel_id] = guild.id
        self._starts_done.clear()
        try:
            plan = await self.starter.plan(guild, voice_channel, requested)
            built = await self.starter.build(plan, self._request_stop, self._bot_user_ids())
        except Exception as exc:
            told = start_failure(exc)
            if told is exc:
                raise
            raise told from exc
        finally:
            del self._starting[channel_id]
            asked_to_stop = self._stop_when_started.pop(channel_id, None)
            if not self._starting:
                self._starts_done.set()
        running = built.running
        self.sessions[channel_id] = running
        stop_reason = "shutdown" if self._closing else asked_to_stop
        if stop_reason is not None:  # asked to stop (or shutting down) while it was starting
            await self._stop(running, stop_reason)
            if self._closing:
                raise ShuttingDown()
            raise NoActiveSession("The interpretation was stopped as asked while it was starting.")
        running.live.start_output()
        keeper = SpeakerKeeper(SessionPlacements(running, self.leases, plan.prefs), self.speaker_pool)
        self._keepers[channel_id] = keeper
        keeper.start()
        self.housekeeping.ensure_running()
        self._update_gauges()
        self.metrics.sessions_started.inc()
        log.info(
            "session %s started in channel %s: %s -> %s",
            running.session_id,
            channel_id,
            running.source,
            ", ".join(running.targets),
        )
        return StartReport(
            running.session_id,
            running.source,
            list(running.targets),
            running.placements,
            running.transcript_channel.id,
            built.warnings,
        )

    async def _await_shutdowns(self, guild_id: int) -> None:
        """A start while a session of this server is shutting down waits for the shutdown (bounded: it
        is itself bounded) instead of answering "already running"."""
        pending = [
            task
            for channel_id, task in self._stopping.items()
            if channel_id in self.sessions and self.sessions[channel_id].guild.id == guild_id
        ]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_WAIT_S)

    # --- stopping ---------------------------------------------------------------------------------
    def _find(self, guild_id: int, channel_id: int | None) -> RunningSession:
        if channel_id is not None and channel_id in self.sessions and self.sessions[channel_id].guild.id == guild_id:
            return self.sessions[channel_id]
        in_guild = [r for r in self.sessions.values() if r.guild.id == guild_id]
        if len(in_guild) == 1:
            return in_guild[0]
        if not in_guild:
            raise NoActiveSession()
        raise NoActiveSession(
            "Several sessions are running in this server; join the voice channel of the one "
            "to stop and run the command again."
        )

    def _request_stop(self, live: LiveSession, reason: str) -> None:
        running = self.sessions.get(live.config.source_channel_id)
        if running is not None and running.live is live:
            task = self._stop_task(running, reason)
            task.add_done_callback(_log_failure)

    async def _stop(self, running: RunningSession, reason: str) -> StopReport:
        return await asyncio.shield(self._stop_task(running, reason))

    def _stop_task(self, running: RunningSession, reason: str) -> asyncio.Task[StopReport]:
        channel_id = running.channel.id
        task = self._stopping.get(channel_id)
        if task is None:
            task = asyncio.create_task(self._shutdown(running, reason), name=f"stop-session-{running.session_id}")
            self._stopping[channel_id] = task
            task.add_done_callback(lambda _t: self._stopping.pop(channel_id, None))
        return task

    async def _shutdown(self, running: RunningSession, reason: str) -> StopReport:
        live = running.live
        log.info("session %s stopping (%s)", running.session_id, reason)
        keeper = self._keepers.pop(running.channel.id, None)
        try:
            if keeper is not None:  # no rejoining or moving while the session ends
                await keeper.stop()
            try:
                async with self.core.database.session() as s:
                    await db_sessions.mark_stopping(s, running.session_id)
            except Exception as exc:
                log.warning("session %s: could not mark it stopping: %s", running.session_id, exc)
            # Each step runs whatever the one before did: a stream that failed mid-stop must not keep the
            # speaker bot in its channel, the Palabra session billed or the row stuck in "stopping".
            sid = running.session_id
            await _step(sid, "winding down", live.wind_down())
            await _step(sid, "deleting its Palabra session", self.palabra.delete_created(running.rest))
            await _step(sid, "releasing its speaker bots", self.leases.release_session(sid))
            running.slots.clear()
            await _step(sid, "leaving voice", _leave_voice(live.parts.voice_client))
            await end_row(self.core, sid, reason)
            lines = len(live.parts.transcript.finals())
            summary_id = await post_summary(running, reason, self.metrics)
        finally:
            self.sessions.pop(running.channel.id, None)
            self._update_gauges()
        self.metrics.sessions_stopped.labels(reason).inc()
        log.info("session %s stopped (%s): %d transcript lines", running.session_id, reason, lines)
        return StopReport(running.session_id, live.uptime_s, lines, summary_id)

    # --- recovery, privacy, gauges ------------------------------------------------------------------
    async def _resume(self, row: CrashedSession) -> None:
        channel = self.listener.get_channel(row.source_channel_id)
        if not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            log.info("not resuming session %s: its channel is gone", row.id)
            return
        if humans_in(channel, self._bot_user_ids()) == 0:
            log.info("not resuming session %s: nobody is in the channel", row.id)
            return
        try:
            requested = Requested(
                started_by_id=row.started_by_user_id,
                started_by_name="the bot, resuming after a restart",
                source=row.source_language,
                targets=row.target_languages,
                continues=row.lineage,
            )
            report = await self._start(channel.guild, channel, requested)
            log.info("resumed the interpretation of channel %s as session %s", channel.id, report.session_id)
        except InterpretationError as exc:
            log.warning("could not resume the interpretation of channel %s: %s", channel.id, exc.user_message)
        except Exception:  # one session that cannot resume must not keep the others (or start-up) down
            log.exception("could not resume the interpretation of channel %s", channel.id)

    def _bot_user_ids(self) -> set[int]:
        ids = {self.listener.user.id} if self.listener.user else set()
        ids.update(speaker.user.id for speaker in self.leases.speakers if speaker.user is not None)
        return ids

    async def _still_opted_out(self, guild_id: int, user_id: int) -> bool:
        async with self.core.database.session() as s:
            return await privacy.is_opted_out(s, user_id, guild_id)

    def _palabra_paused_count(self) -> int:
        return sum(running.live.parts.streaming.idle_paused for running in list(self.sessions.values()))

    def _update_gauges(self) -> None:
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.speakers_leased.set(len(self.leases.slots()))
        self.metrics.speakers.set(len(self.leases.speakers))


def _status_of(running: RunningSession, instance_id: str, shard: tuple[int, int]) -> SessionStatus:
    live = running.live
    p50, p90 = live.latency_percentiles()
    return SessionStatus(
        session_id=running.session_id,
        guild_id=running.guild.id,
        source_channel_id=running.channel.id,
        source=running.source,
        targets=list(running.targets),
        placements=dict(running.placements),
        speakers_heard=sorted(live.speakers_heard),
        uptime_s=live.uptime_s,
        latency_p50_s=p50,
        latency_p90_s=p90,
        packets=live.receiver_count("packets"),
        decrypt_failures=live.receiver_count("transport_failures") + live.receiver_count("dave_failures"),
        palabra_paused=live.parts.streaming.idle_paused,
        palabra_paused_s=live.parts.streaming.idle_paused_s(),
        instance_id=instance_id,
        shard=shard,
    )


async def _leave_voice(vc: ListenerVoice) -> None:
    """Bounded, also when the connection is already dead (discord.py would wait 30 s for a confirmation)."""
    if isinstance(vc, discord.VoiceClient):
        await leave(vc)
        return
    try:
        playback.stop(vc)
        await asyncio.wait_for(vc.disconnect(force=True), timeout=LEAVE_TIMEOUT)
    except Exception as exc:
        log.warning("leaving the voice channel failed: %s", exc)


def _log_failure(task: asyncio.Task[StopReport]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("stopping a session failed", exc_info=task.exception())


async def _step(session_id: int, what: str, step: Awaitable[object]) -> None:
    """One step of a session's shutdown: a failure is logged and the shutdown goes on."""
    try:
        await step
    except Exception:
        log.exception("session %s: %s failed while stopping", session_id, what)
