"""The interpretation sessions of this process: what the slash commands call.

One session per source voice channel. `start` joins the listener, posts the consent notice, starts the
Palabra stream with the server's settings, places each target language (a speaker bot in its sibling
channel; else same-channel playback for one language and text only for the rest, each with the reason)
and returns a `StartReport`. `stop` (or an auto-stop: empty channel, maximum duration, the bot kicked or
moved) ends the stream, drains the tail, deletes the Palabra session, releases the speakers and posts a
summary with the transcript as .txt and .srt.

Every Palabra session id is written to the database before the stream uses it, so `recover` (at start-up)
can delete the sessions of a crashed process and any other session this bot created but no longer
tracks; it then resumes interpretation where the channel still has people.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord

from bot.audio.mixer import PrebufferedMixer
from bot.errors import BotError
from bot.interpretation.errors import (
    BotMissingPermissions,
    InterpretationError,
    InvalidLanguages,
    NoActiveSession,
    NotInVoiceChannel,
    PalabraUnavailable,
    SessionAlreadyRunning,
)
from bot.interpretation.notices import DecryptFailureNotices
from bot.interpretation.placement import consent_notice, fallback_placements
from bot.interpretation.reports import Placement, PlacementKind, SessionStatus, StartReport, StopReport
from bot.interpretation.session import LiveSession, SessionConfig, SessionParts, humans_in, user_speaker
from bot.interpretation.transcripts import ChannelSink, Transcript, TranscriptPoster, WebhookSink
from bot.shards import shard_of

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bot.ownership import TakenSession
    from bot.services import Services

__all__ = [
    "InterpretationManager",
    "Placement",
    "PlacementKind",
    "SessionStatus",
    "StartReport",
    "StopReport",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
HEARTBEAT_INTERVAL_S = 30.0
PURGE_INTERVAL_S = 3600.0  # transcript retention is in days: hourly is prompt enough
UNTRACKED_LOOKBACK = timedelta(days=2)  # Palabra sessions expire long before this


class RecordingRest:
    """The Palabra REST client as StreamingSession sees it: every session it creates is recorded in the
    database before the stream uses it (and deleted again if recording fails)."""

    def __init__(self, rest: Any, record: Any) -> None:
        self.rest, self.record = rest, record
        self.created: list[str] = []

    async def create_session(self, intent: str = "api") -> Any:
        info = await self.rest.create_session(intent)
        try:
            await self.record(info.id)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.rest.delete_session(info.id)
            raise
        self.created.append(info.id)
        return info

    async def delete_session(self, session_id: str) -> None:
        await self.rest.delete_session(session_id)
        if session_id in self.created:  # the stream deleted it itself (a dropped or failed connection)
            self.created.remove(session_id)

    async def aclose(self) -> None:
        """The shared client belongs to the application."""


@dataclass
class _Running:
    live: LiveSession
    guild: discord.Guild
    channel: Any
    transcript_channel: Any
    source: str
    targets: list[str]
    placements: dict[str, Placement]
    leases: list[Any]
    rest: RecordingRest

    @property
    def session_id(self) -> int:
        return self.live.config.session_id


class InterpretationManager:
    def __init__(self, services: Services, listener: discord.Client, speaker_pool: Any) -> None:
        from bot.db.sessions import default_instance_id
        from bot.metrics import Metrics

        self.services = services
        self.listener = listener
        self.speaker_pool = speaker_pool
        self.instance_id: str = services.extras.get("instance_id") or default_instance_id()
        self.metrics = services.extras.get("metrics") or Metrics()
        self.partial_interval_s: float = services.extras.get("partial_interval_s", 1.0)
        self.session_options: dict[str, Any] = services.extras.get("session_options", {})
        self.sessions: dict[int, _Running] = {}  # source channel id -> running session
        self._starting: dict[int, int] = {}  # channel id -> guild id, while a start is under way
        self._stopping: dict[int, asyncio.Task[StopReport]] = {}
        self._heartbeat: asyncio.Task | None = None

    # --- public API ------------------------------------------------------------------------------
    async def start(
        self,
        *,
        guild: discord.Guild,
        voice_channel: discord.VoiceChannel | discord.StageChannel,
        requested_by: discord.Member,
        source: str | None = None,
        targets: list[str] | None = None,
    ) -> StartReport:
        name = getattr(requested_by, "display_name", None) or "a member"
        return await self._start(
            guild,
            voice_channel,
            started_by_id=getattr(requested_by, "id", None),
            started_by_name=name,
            source=source,
            targets=targets,
        )

    async def stop(self, *, guild_id: int, channel_id: int | None = None, reason: str = "stopped") -> StopReport:
        return await self._stop(self._find(guild_id, channel_id), reason)

    def status(self, guild_id: int) -> list[SessionStatus]:
        found = []
        for running in self.sessions.values():
            if running.guild.id != guild_id:
                continue
            live = running.live
            stats = live.receiver_stats()
            p50, p90 = live.latency_percentiles()
            found.append(
                SessionStatus(
                    session_id=running.session_id,
                    guild_id=guild_id,
                    source_channel_id=running.channel.id,
                    source=running.source,
                    targets=list(running.targets),
                    placements=dict(running.placements),
                    speakers_heard=sorted(live.speakers_heard),
                    uptime_s=live.uptime_s,
                    latency_p50_s=p50,
                    latency_p90_s=p90,
                    packets=int(stats.get("packets", 0)),
                    decrypt_failures=int(stats.get("transport_failures", 0)) + int(stats.get("dave_failures", 0)),
                    instance_id=self.instance_id,
                    shard=(shard_of(guild_id, self.services.settings.shard_count), self.services.settings.shard_count),
                )
            )
        return found

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

    async def recover(self, taken: Sequence[TakenSession] | None = None) -> None:
        """Clean up after dead processes on this process's shards, then resume where people still listen.

        `taken`: the sessions bot.ownership took over at start-up (before the clients connected). None
        takes over here every live session of this process's shards that it is not running itself (a
        manager used without bot.ownership). Sessions of other shards are never touched: their
        process may be alive.
        """
        if taken is None:
            taken = await self._take_over()
        for row in taken:
            log.warning(
                "session %s (channel %s) was left live by %s; closing it",
                row.id,
                row.source_channel_id,
                row.previous_instance_id,
            )
            for palabra_id in row.palabra_session_ids:
                await self._delete_palabra_session(palabra_id)
        await self._delete_untracked_palabra_sessions()
        await self.purge_expired_transcripts()
        self._ensure_heartbeat()
        for row in taken:
            await self._resume(row)

    async def _take_over(self) -> list[TakenSession]:
        from bot.db import instances as db_instances
        from bot.db.instances import ShardClaim
        from bot.ownership import TakenSession
        from bot.shards import ShardPlan

        plan = ShardPlan.of(self.services.settings)
        claim = ShardClaim(self.instance_id, plan.ids, plan.count)
        running = [self.instance_id] if self.sessions or self._starting else []
        async with self.services.database.session() as s:
            rows = await db_instances.take_over_sessions(s, claim, alive=running)
            return [TakenSession.of(row) for row in rows]

    async def purge_expired_transcripts(self) -> int:
        """Keep the consent notice's promise: lines older than the guild's retention are deleted."""
        from bot.db import transcripts as db_transcripts

        try:
            async with self.services.database.session() as s:
                deleted = await db_transcripts.purge_expired_transcripts(s)
        except Exception:
            log.exception("purging expired transcript lines failed")
            return 0
        if deleted:
            log.info("deleted %d transcript lines past their retention", deleted)
        return deleted

    async def close(self) -> None:
        for running in list(self.sessions.values()):
            try:
                await self._stop(running, "shutdown")
            except Exception:
                log.exception("stopping session %s at shutdown failed", running.session_id)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    # --- starting ---------------------------------------------------------------------------------
    async def _start(
        self,
        guild: discord.Guild,
        voice_channel: Any,
        *,
        started_by_id: int | None,
        started_by_name: str,
        source: str | None,
        targets: list[str] | None,
    ) -> StartReport:
        if voice_channel is None or not isinstance(voice_channel, (discord.VoiceChannel, discord.StageChannel)):
            raise NotInVoiceChannel()
        channel_id = voice_channel.id
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
        try:
            return await self._start_in(guild, voice_channel, started_by_id, started_by_name, source, targets)
        finally:
            del self._starting[channel_id]

    async def _start_in(
        self,
        guild: discord.Guild,
        voice_channel: Any,
        started_by_id: int | None,
        started_by_name: str,
        source: str | None,
        targets: list[str] | None,
    ) -> StartReport:
        from bot.db import guilds, privacy
        from bot.db import sessions as db_sessions
        from bot.db.errors import SessionAlreadyActive

        services = self.services
        if services.palabra is None or services.credentials is None:
            raise PalabraUnavailable("Palabra credentials are not configured on this bot; ask its operator.")
        async with services.database.session() as s:
            prefs = await guilds.get_or_create_guild_settings(s, guild.id)
            opted_out = await privacy.opted_out_user_ids(s, guild.id)
        source, targets, warnings = check_languages(
            source or prefs.source_language, targets if targets else list(prefs.target_languages)
        )
        self._check_permissions(guild, voice_channel)
        transcript_channel = self._transcript_channel(guild, prefs.transcript_channel_id, voice_channel, warnings)
        try:
            async with services.database.session() as s:
                row = await db_sessions.start_session(
                    s,
                    guild_id=guild.id,
                    source_channel_id=voice_channel.id,
                    source_language=source,
                    target_languages=targets,
                    instance_id=self.instance_id,
                    text_channel_id=transcript_channel.id,
                    started_by_user_id=started_by_id,
                )
                session_id = row.id
        except SessionAlreadyActive:
            raise SessionAlreadyRunning() from None

        cleanup = _Cleanup()
        try:
            return await self._assemble(
                guild,
                voice_channel,
                transcript_channel,
                session_id,
                prefs,
                opted_out,
                source,
                targets,
                warnings,
                started_by_name,
                cleanup,
            )
        except BaseException as exc:
            await cleanup.run()
            await self._end_row(session_id, "failed_to_start")
            if isinstance(exc, InterpretationError):
                raise
            if isinstance(exc, BotError):
                raise PalabraUnavailable() from exc
            if isinstance(exc, (discord.HTTPException, discord.ClientException, asyncio.TimeoutError)):
                raise InterpretationError(
                    "The bot could not join the voice channel; check its permissions and try again."
                ) from exc
            raise

    async def _assemble(
        self,
        guild: discord.Guild,
        voice_channel: Any,
        transcript_channel: Any,
        session_id: int,
        prefs: Any,
        opted_out: set[int],
        source: str,
        targets: list[str],
        warnings: list[str],
        started_by_name: str,
        cleanup: _Cleanup,
    ) -> StartReport:
        from bot.palabra.errors import PalabraError
        from bot.palabra.streaming import StreamingSession
        from bot.palabra.task import SESSION_SAMPLE_RATE, build_task
        from bot.voice.receiver import ListeningVoiceClient

        vc = await voice_channel.connect(
            cls=ListeningVoiceClient, timeout=CONNECT_TIMEOUT_S, reconnect=True, self_deaf=False
        )
        cleanup.add(lambda: vc.disconnect(force=True))
        vc.receiver.on_failure = DecryptFailureNotices(
            lambda text: transcript_channel.send(text, allowed_mentions=discord.AllowedMentions.none()),
            lambda uid: user_speaker(guild, uid).name,
        )
        await self._post_consent(voice_channel, targets, transcript_channel.id, prefs, started_by_name, warnings)

        task = build_task(source, targets, voices=prefs.voices)
        rest = RecordingRest(self.services.palabra, lambda pid: self._record_palabra_id(session_id, pid))
        try:
            streaming = await StreamingSession.start(
                credentials=self.services.credentials,
                task=task,
                api_url=self.services.settings.palabra_api_url,
                rest=rest,
            )
        except PalabraError as exc:
            log.error("session %s: Palabra did not start: %s", session_id, exc)
            self.metrics.errors.labels("palabra_start").inc()
            await self._delete_created(rest)
            raise PalabraUnavailable(_palabra_problem(exc)) from None
        cleanup.add(streaming.close)
        cleanup.add(lambda: self._delete_created(rest))

        # Audio flows from here on (the stream's timeline starts with it); outputs are attached once placed.
        mixer = PrebufferedMixer()
        for user_id in opted_out:
            mixer.exclude(user_id)
        config = SessionConfig(
            session_id=session_id,
            guild_id=guild.id,
            source_channel_id=voice_channel.id,
            transcript_channel_id=transcript_channel.id,
            source=source,
            targets=targets,
            session_rate=SESSION_SAMPLE_RATE,
            auto_stop_empty_s=float(prefs.auto_stop_empty_seconds),
            auto_stop_max_s=float(prefs.auto_stop_max_seconds) if prefs.auto_stop_max_seconds else None,
            **self.session_options,
        )
        transcript = Transcript()
        live = LiveSession(
            config,
            SessionParts(vc, streaming, None, transcript),
            mixer=mixer,
            bot_user_ids=self._bot_user_ids(),
            resolve_speaker=lambda uid: user_speaker(guild, uid),
            on_stop=self._request_stop,
            on_latency=self.metrics.latency.observe,
            on_line=lambda kind, tid, data: self._store_line(session_id, kind, tid, data),
            metrics=self.metrics,
        )
        await live.start_audio()
        cleanup.add(live.abort)

        placements, playbacks, floor, leases = await self._place(
            guild, voice_channel, vc, session_id, targets, prefs, cleanup
        )
        live.parts.playbacks.update(playbacks)
        live.parts.floor_playbacks.extend(floor)
        live.parts.poster = TranscriptPoster(
            await self._sink(transcript_channel, warnings),
            transcript,
            targets,
            partial_interval_s=self.partial_interval_s,
            on_error=lambda _text: self.metrics.errors.labels("transcript_post").inc(),
            on_posted=self.metrics.transcript_messages.inc,
        )
        self.sessions[voice_channel.id] = _Running(
            live, guild, voice_channel, transcript_channel, source, targets, placements, leases, rest
        )
        cleanup.clear()
        live.start_output()
        self._ensure_heartbeat()
        self._update_gauges()
        self.metrics.sessions_started.inc()
        log.info("session %s started in channel %s: %s -> %s", session_id, voice_channel.id, source, ", ".join(targets))
        return StartReport(session_id, source, list(targets), placements, transcript_channel.id, warnings)

    def _check_permissions(self, guild: discord.Guild, channel: Any) -> None:
        me = guild.me
        if me is None:
            return
        perms = channel.permissions_for(me)
        missing = [
            name
            for name, ok in (("Connect", perms.connect), ("Speak", perms.speak), ("View Channel", perms.view_channel))
            if not ok
        ]
        if missing:
            raise BotMissingPermissions(f"The bot needs {', '.join(missing)} in <#{channel.id}>.")

    def _transcript_channel(
        self, guild: discord.Guild, channel_id: int | None, voice_channel: Any, warnings: list[str]
    ) -> Any:
        if channel_id:
            channel = guild.get_channel_or_thread(channel_id)
            if channel is not None:
                return channel
            warnings.append(
                f"the transcript channel <#{channel_id}> is gone; transcripts go to this voice channel's chat"
            )
        return voice_channel

    async def _post_consent(
        self,
        channel: Any,
        targets: list[str],
        transcript_channel_id: int,
        prefs: Any,
        started_by_name: str,
        warnings: list[str],
    ) -> None:
        text = consent_notice(
            targets=targets,
            transcript_channel_id=transcript_channel_id,
            retention_days=int(prefs.transcript_retention_days),
            started_by=started_by_name,
        )
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post the consent notice in channel %s: %s", channel.id, exc)
            warnings.append(
                "the consent notice could not be posted in the voice channel's chat (the bot needs Send Messages there)"
            )

    async def _sink(self, channel: Any, warnings: list[str]) -> Any:
        try:
            return await WebhookSink.for_channel(channel, self.listener.user.id)
        except (discord.HTTPException, TypeError) as exc:
            log.info("no webhook in channel %s (%s); posting transcripts as the bot", channel.id, exc)
            warnings.append(
                "transcripts are posted as the bot: give it Manage Webhooks to post them under each speaker's name"
            )
            return ChannelSink(channel)

    async def _place(
        self,
        guild: discord.Guild,
        voice_channel: Any,
        vc: Any,
        session_id: int,
        targets: list[str],
        prefs: Any,
        cleanup: _Cleanup,
    ) -> tuple[dict[str, Placement], dict[str, Any], list[Any], list[Any]]:
        from bot.voice.playback import OPUS_SETTINGS, TranslationSource, ensure_discord_opus

        siblings = prefs.sibling_channels
        floor = (
            (min(1.0, prefs.floor_volume_base), min(1.0, prefs.floor_volume_ducked))
            if prefs.floor_audio_enabled
            else (0.0, 0.0)
        )
        placements: dict[str, Placement] = {}
        playbacks: dict[str, Any] = {}
        floor_sources: list[Any] = []
        leases: list[Any] = []
        unplaced: list[tuple[str, str]] = []
        for language in targets:
            channel_id = siblings.get(language)
            if channel_id is None:
                unplaced.append((language, f"no voice channel is set for {language} (/setup channel)"))
                continue
            if channel_id == voice_channel.id:
                unplaced.append((language, "its channel is this source channel"))
                continue
            source = TranslationSource(floor_base_volume=floor[0], floor_ducked_volume=floor[1])
            lease, why = await self._lease_speaker(guild, channel_id, language, session_id, source)
            if lease is None:
                unplaced.append((language, why))
                continue
            cleanup.add(lease.release)
            leases.append(lease)
            playbacks[language] = source
            if prefs.floor_audio_enabled:
                floor_sources.append(source)
            placements[language] = Placement(language, "sibling", channel_id, None)
        fallbacks = fallback_placements(unplaced, voice_channel.id)
        for language, placement in fallbacks.items():
            if placement.kind == "same_channel":
                ensure_discord_opus()
                source = TranslationSource()
                vc.play(source, **OPUS_SETTINGS)
                playbacks[language] = source
        placements.update(fallbacks)
        ordered = {language: placements[language] for language in targets}
        return ordered, playbacks, floor_sources, leases

    async def _lease_speaker(
        self, guild: discord.Guild, channel_id: int, language: str, session_id: int, source: Any
    ) -> tuple[Any, str]:
        from bot.db import leases as db_leases

        pool = self.speaker_pool
        if pool is None or not getattr(pool, "speakers", None):
            return None, "no speaker bot is configured (SPEAKER_TOKENS)"
        in_use = {id(lease) for running in self.sessions.values() for lease in running.leases}
        lease = await pool.lease(guild.id, language)
        if lease is None or id(lease) in in_use:
            return None, "every speaker bot is busy in this server"
        async with self.services.database.session() as s:
            row = await db_leases.acquire_speaker(
                s,
                candidates=[lease.speaker_id],
                guild_id=guild.id,
                channel_id=channel_id,
                language=language,
                instance_id=self.instance_id,
                session_id=session_id,
            )
        if row is None:
            await lease.release()
            return None, "its speaker bot or channel is in use by another session"
        try:
            await lease.play(channel_id, source)
        except Exception as exc:  # SpeakerError, discord errors, timeouts: the language falls back
            log.warning("speaker for %s could not join channel %s: %s", language, channel_id, exc)
            await lease.release()
            async with self.services.database.session() as s:
                await db_leases.release_lease(s, row.id)
            return None, f"the speaker bot could not join <#{channel_id}>"
        return lease, ""

    # --- stopping ---------------------------------------------------------------------------------
    def _find(self, guild_id: int, channel_id: int | None) -> _Running:
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

    async def _stop(self, running: _Running, reason: str) -> StopReport:
        return await asyncio.shield(self._stop_task(running, reason))

    def _stop_task(self, running: _Running, reason: str) -> asyncio.Task[StopReport]:
        channel_id = running.channel.id
        task = self._stopping.get(channel_id)
        if task is None:
            task = asyncio.create_task(self._shutdown(running, reason), name=f"stop-session-{running.session_id}")
            self._stopping[channel_id] = task
            task.add_done_callback(lambda _t: self._stopping.pop(channel_id, None))
        return task

    async def _shutdown(self, running: _Running, reason: str) -> StopReport:
        from bot.db import sessions as db_sessions

        live = running.live
        log.info("session %s stopping (%s)", running.session_id, reason)
        try:
            with contextlib.suppress(Exception):
                async with self.services.database.session() as s:
                    await db_sessions.mark_stopping(s, running.session_id)
            await live.wind_down()
            await self._delete_created(running.rest)
            await self._release_speakers(running)
            await self._leave_voice(live.parts.voice_client)
            await self._end_row(running.session_id, reason)
            lines = len(live.parts.transcript.finals())
            summary_id = await self._post_summary(running, reason)
        finally:
            self.sessions.pop(running.channel.id, None)
            self._update_gauges()
        self.metrics.sessions_stopped.labels(reason).inc()
        log.info("session %s stopped (%s): %d transcript lines", running.session_id, reason, lines)
        return StopReport(running.session_id, live.uptime_s, lines, summary_id)

    async def _release_speakers(self, running: _Running) -> None:
        for lease in running.leases:
            try:
                await lease.release()
            except Exception:
                log.exception("releasing speaker %s failed", getattr(lease, "speaker_id", "?"))
        running.leases.clear()

    async def _leave_voice(self, vc: Any) -> None:
        try:
            if vc.is_playing():
                vc.stop()
            await asyncio.wait_for(vc.disconnect(force=True), timeout=10)
        except Exception as exc:
            log.warning("leaving the voice channel failed: %s", exc)

    async def _end_row(self, session_id: int, reason: str) -> None:
        from bot.db import sessions as db_sessions

        try:
            async with self.services.database.session() as s:
                await db_sessions.stop_session(s, session_id, reason=reason[:64])
        except Exception:
            log.exception("could not record the end of session %s", session_id)

    async def _post_summary(self, running: _Running, reason: str) -> int | None:
        live = running.live
        transcript = live.parts.transcript
        minutes, seconds = divmod(int(live.uptime_s), 60)
        heard = ", ".join(f"<@{uid}>" for uid in sorted(live.speakers_heard)) or "nobody"
        p50, p90 = live.latency_percentiles()
        latency = f"; translation delay median {p50:.1f} s, 90th percentile {p90:.1f} s" if p50 is not None else ""
        text = (
            f"⏹️ Interpretation of <#{running.channel.id}> ended ({_reason_text(reason)}) after "
            f"{minutes} min {seconds} s: {len(transcript.finals())} lines, {running.source} → "
            f"{', '.join(running.targets)}; speakers heard: {heard}{latency}."
        )
        files = [
            discord.File(
                io.BytesIO(transcript.to_txt(running.targets).encode()), f"transcript-{running.session_id}.txt"
            ),
            discord.File(
                io.BytesIO(transcript.to_srt(running.targets).encode()), f"transcript-{running.session_id}.srt"
            ),
        ]
        try:
            message = await running.transcript_channel.send(
                text, files=files, allowed_mentions=discord.AllowedMentions.none()
            )
            return message.id
        except discord.HTTPException as exc:
            log.warning("could not post the summary of session %s: %s", running.session_id, exc)
            self.metrics.errors.labels("summary_post").inc()
            return None

    # --- Palabra session bookkeeping ----------------------------------------------------------------
    async def _record_palabra_id(self, session_id: int, palabra_id: str) -> None:
        from bot.db import sessions as db_sessions

        async with self.services.database.session() as s:
            await db_sessions.add_palabra_session_id(s, session_id, palabra_id)

    async def _delete_created(self, rest: RecordingRest) -> None:
        for palabra_id in rest.created:
            await self._delete_palabra_session(palabra_id)
        rest.created.clear()

    async def _delete_palabra_session(self, palabra_id: str) -> None:
        from bot.palabra.errors import NotFoundError, PalabraError

        if self.services.palabra is None:
            return
        try:
            await self.services.palabra.delete_session(palabra_id)
            log.info("Palabra session %s deleted", palabra_id)
        except NotFoundError:
            log.debug("Palabra session %s was already gone", palabra_id)
        except PalabraError as exc:
            log.warning("could not delete Palabra session %s (it expires by itself): %s", palabra_id, exc)
            self.metrics.errors.labels("palabra_delete").inc()

    async def _delete_untracked_palabra_sessions(self) -> None:
        """Palabra sessions this bot created (their ids are in the database) that no live session uses."""
        from sqlalchemy import select

        from bot.db.models import SESSION_ENDED, InterpretationSession
        from bot.db.types import utcnow
        from bot.palabra.errors import PalabraError

        if self.services.palabra is None or getattr(self.services.credentials, "kind", None) == "api_key":
            return  # API-key streams have no session-storage session
        since = utcnow() - UNTRACKED_LOOKBACK
        async with self.services.database.session() as s:
            rows = (
                await s.execute(
                    select(InterpretationSession.palabra_session_ids, InterpretationSession.status).where(
                        InterpretationSession.started_at >= since
                    )
                )
            ).all()
        # Live sessions' Palabra sessions are in use, by this process or by another on other shards.
        ours = {pid for ids, status in rows if status == SESSION_ENDED for pid in (ids or [])}
        tracked = {pid for running in self.sessions.values() for pid in running.rest.created}
        try:
            listed = [summary.id async for summary in self.services.palabra.list_sessions()]
        except PalabraError as exc:
            log.warning("could not list Palabra sessions to clean up: %s", exc)
            return
        for palabra_id in listed:
            if palabra_id in ours and palabra_id not in tracked:
                log.warning("Palabra session %s is ours but untracked; deleting it", palabra_id)
                await self._delete_palabra_session(palabra_id)

    # --- recovery helpers ---------------------------------------------------------------------------
    async def _resume(self, row: TakenSession) -> None:
        channel = self.listener.get_channel(row.source_channel_id)
        if channel is None or not isinstance(channel, (discord.VoiceChannel, discord.StageChannel)):
            log.info("not resuming session %s: its channel is gone", row.id)
            return
        if humans_in(channel, self._bot_user_ids()) == 0:
            log.info("not resuming session %s: nobody is in the channel", row.id)
            return
        try:
            report = await self._start(
                channel.guild,
                channel,
                started_by_id=row.started_by_user_id,
                started_by_name="the bot, resuming after a restart",
                source=row.source_language,
                targets=list(row.target_languages),
            )
            log.info("resumed the interpretation of channel %s as session %s", channel.id, report.session_id)
        except InterpretationError as exc:
            log.warning("could not resume the interpretation of channel %s: %s", channel.id, exc.user_message)

    def _bot_user_ids(self) -> set[int]:
        ids = {self.listener.user.id} if self.listener.user else set()
        for speaker in getattr(self.speaker_pool, "speakers", []) or []:
            if speaker.user is not None:
                ids.add(speaker.user.id)
        return ids

    async def _still_opted_out(self, guild_id: int, user_id: int) -> bool:
        from bot.db import privacy

        async with self.services.database.session() as s:
            return await privacy.is_opted_out(s, user_id, guild_id)

    async def _store_line(self, session_id: int, kind: str, tid: str, data: Any) -> None:
        from bot.db import transcripts as db_transcripts

        try:
            async with self.services.database.session() as s:
                if kind == "line":
                    await db_transcripts.add_transcript_line(
                        s,
                        session_id=session_id,
                        transcription_id=tid,
                        source_text=data.text,
                        speaker_user_id=data.speaker.user_id,
                        source_language=data.language,
                        translations=dict(data.translations),
                        start_time=data.start,
                        end_time=data.end,
                    )
                else:
                    language, text = data
                    await db_transcripts.add_translation(
                        s, session_id=session_id, transcription_id=tid, language=language, text=text
                    )
        except Exception:
            log.exception("session %s: storing transcript line %s failed", session_id, tid)
            self.metrics.errors.labels("database").inc()

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat(), name="session-heartbeat")

    async def _beat(self) -> None:
        from bot.db import sessions as db_sessions

        last_purge = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                async with self.services.database.session() as s:
                    await db_sessions.heartbeat(s, self.instance_id)
            except Exception:
                log.exception("session heartbeat failed")
            if time.monotonic() - last_purge >= PURGE_INTERVAL_S:
                last_purge = time.monotonic()
                await self.purge_expired_transcripts()

    def _update_gauges(self) -> None:
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.speakers_leased.set(sum(len(r.leases) for r in self.sessions.values()))
        self.metrics.speakers.set(len(getattr(self.speaker_pool, "speakers", []) or []))


class _Cleanup:
    """Undo steps for a start that fails halfway, run newest first."""

    def __init__(self) -> None:
        self._steps: list[Any] = []

    def add(self, step: Any) -> None:
        self._steps.append(step)

    def clear(self) -> None:
        self._steps.clear()

    async def run(self) -> None:
        for step in reversed(self._steps):
            try:
                await step()
            except Exception:
                log.exception("cleaning up a failed start")
        self._steps.clear()


def check_languages(source: str, targets: list[str]) -> tuple[str, list[str], list[str]]:
    """Normalised source and targets plus warnings for unknown codes; InvalidLanguages for unusable input."""
    from bot.palabra import languages
    from bot.palabra.errors import InvalidTaskError

    try:
        source_warning = languages.check_source(source)
        codes, warnings = languages.check_targets(targets)
    except InvalidTaskError as exc:
        raise InvalidLanguages(f"{exc}. See /languages for the supported codes.") from None
    if not codes:
        raise InvalidLanguages(
            "No target language is set: pass `targets` (e.g. `es,fr`) or set the server's "
            "defaults with /setup languages."
        )
    return languages.normalise(source), codes, ([source_warning] if source_warning else []) + warnings


def _palabra_problem(exc: BaseException) -> str | None:
    """What users may know about a failed Palabra start (never the details, which may name the account)."""
    from bot.palabra.errors import AuthenticationError, InsufficientBalanceError

    if isinstance(exc, InsufficientBalanceError):
        return "The translation service account behind this bot is out of balance; ask the bot's operator."
    if isinstance(exc, AuthenticationError):
        return "The translation service refused the bot's credentials; ask the bot's operator."
    return None


def _reason_text(reason: str) -> str:
    return {
        "stopped": "stopped with /interpret stop",
        "channel_empty": "the channel was empty",
        "max_duration": "the maximum duration was reached",
        "bot_disconnected": "the bot was disconnected",
        "bot_moved": "the bot was moved to another channel",
        "shutdown": "the bot is shutting down",
        "palabra_error": "the translation service failed",
        "palabra_closed": "the translation service ended the stream",
    }.get(reason, reason)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("stopping a session failed", exc_info=task.exception())
