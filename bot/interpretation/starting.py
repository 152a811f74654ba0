"""Building a session: check what can be checked (`plan`), then assemble it (`build`): the listener in
the voice channel, the consent notice, the Palabra stream, audio flowing, the languages placed, the
transcript poster. A start that fails halfway undoes what it built, newest first, and ends its row."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord
from sqlalchemy.exc import SQLAlchemyError

from bot.audio.mixer import PrebufferedMixer
from bot.audio.opus import OpusUnavailable
from bot.db import guilds, privacy
from bot.db import sessions as db_sessions
from bot.db.errors import DatabaseError, SessionAlreadyActive
from bot.errors import UserFacingError
from bot.interpretation import channels
from bot.interpretation.errors import (
    DatabaseProblem,
    PalabraUnavailable,
    SessionAlreadyRunning,
    VoiceConnectTimeout,
    VoiceUnavailable,
)
from bot.interpretation.languages import check_languages
from bot.interpretation.notices import DecryptFailureNotices
from bot.interpretation.palabra_sessions import PalabraSessions, RecordingRest, palabra_problem
from bot.interpretation.placing import place_targets
from bot.interpretation.running import RunningSession, SourceChannel, StartPlan
from bot.interpretation.session import LiveSession, SessionConfig, SessionParts, user_speaker
from bot.interpretation.store import TranscriptStore
from bot.interpretation.transcripts import Transcript, TranscriptPoster
from bot.palabra.errors import PalabraError
from bot.palabra.streaming import StreamingSession
from bot.palabra.task import SESSION_SAMPLE_RATE, build_task
from bot.voice.errors import VoiceError
from bot.voice.receiver import ListeningVoiceClient

if TYPE_CHECKING:
    from bot.interpretation.leasing import SpeakerLeases
    from bot.services import Core

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Requested:
    """What the person (or recovery) asked for."""

    started_by_id: int | None
    started_by_name: str
    source: str | None = None
    targets: tuple[str, ...] = ()
    continues: tuple[int, ...] = ()  # crashed sessions this start resumes (bot.interpretation.recovery)


@dataclass
class Built:
    running: RunningSession
    warnings: list[str] = field(default_factory=list)


class SessionStarter:
    def __init__(
        self, core: Core, listener: discord.Client, *, instance_id: str, leases: SpeakerLeases, palabra: PalabraSessions
    ) -> None:
        self.core, self.listener, self.instance_id, self.metrics = core, listener, instance_id, core.metrics
        self.leases, self.palabra = leases, palabra

    async def plan(self, guild: discord.Guild, voice_channel: SourceChannel, requested: Requested) -> StartPlan:
        """Check everything that can be checked before anything is built; the session row is written last."""
        core = self.core
        if core.palabra is None or core.credentials is None:
            raise PalabraUnavailable("Palabra credentials are not configured on this bot; ask its operator.")
        async with core.database.session() as s:
            prefs = await guilds.get_or_create_guild_settings(s, guild.id)
            opted_out = await privacy.opted_out_user_ids(s, guild.id)
        source, codes, warnings = check_languages(
            requested.source or prefs.source_language,
            list(requested.targets) if requested.targets else list(prefs.target_languages),
        )
        channels.check_permissions(guild, voice_channel)
        transcript_channel = channels.transcript_channel(guild, prefs.transcript_channel_id, voice_channel, warnings)
        try:
            async with core.database.session() as s:
                row = await db_sessions.start_session(
                    s,
                    guild_id=guild.id,
                    source_channel_id=voice_channel.id,
                    source_language=source,
                    target_languages=codes,
                    instance_id=self.instance_id,
                    text_channel_id=transcript_channel.id,
                    started_by_user_id=requested.started_by_id,
                    continues=requested.continues,
                )
                session_id = row.id
        except SessionAlreadyActive:
            raise SessionAlreadyRunning() from None
        return StartPlan(
            guild,
            voice_channel,
            transcript_channel,
            session_id,
            prefs,
            frozenset(opted_out),
            source,
            tuple(codes),
            tuple(warnings),
            requested.started_by_name,
            requested.continues,
        )

    async def build(
        self, plan: StartPlan, on_stop: Callable[[LiveSession, str], None], bot_user_ids: set[int]
    ) -> Built:
        """The assembled session, its output not started yet; on failure everything is undone and the
        error says what the user may know."""
        async with AsyncExitStack() as undo:
            try:
                built = await self._assemble(plan, undo, on_stop, bot_user_ids)
            except BaseException as exc:
                await undo.aclose()
                await end_row(self.core, plan.session_id, "failed_to_start")
                told = start_failure(exc)
                if told is exc:
                    raise
                raise told from exc
            undo.pop_all()  # started: the session owns what was built
            return built

    async def _assemble(
        self,
        plan: StartPlan,
        undo: AsyncExitStack,
        on_stop: Callable[[LiveSession, str], None],
        bot_user_ids: set[int],
    ) -> Built:
        guild, transcript_channel = plan.guild, plan.transcript_channel
        warnings = list(plan.warnings)
        try:
            vc = await plan.voice_channel.connect(
                cls=ListeningVoiceClient, timeout=CONNECT_TIMEOUT_S, reconnect=True, self_deaf=False
            )
        except TimeoutError as exc:  # only this wait is "could not join"; any other timeout is told as itself
            log.warning(
                "session %s: the voice connection did not complete within %.0f s", plan.session_id, CONNECT_TIMEOUT_S
            )
            raise VoiceConnectTimeout() from exc
        undo.push_async_callback(_logged_step(lambda: vc.disconnect(force=True)))
        vc.receiver.on_failure = DecryptFailureNotices(
            lambda text: transcript_channel.send(text, allowed_mentions=discord.AllowedMentions.none()),
            lambda uid: user_speaker(guild, uid).name if uid is not None else "someone not identified yet",
        )
        await channels.post_consent(
            plan.voice_channel,
            targets=plan.targets,
            transcript_channel_id=transcript_channel.id,
            retention_days=int(plan.prefs.transcript_retention_days),
            started_by_name=plan.started_by_name,
            warnings=warnings,
        )
        streaming, rest = await self._start_stream(plan, undo)

        # Audio flows from here on (the stream's timeline starts with it); outputs are attached once placed.
        live = self._live_session(plan, vc, streaming, on_stop, bot_user_ids)
        await live.start_audio()
        undo.push_async_callback(_logged_step(live.abort))

        placed = await place_targets(plan, vc, self.leases, undo)
        live.parts.playbacks.update(placed.playbacks)
        live.parts.floor_playbacks.extend(placed.floor_playbacks)
        assert self.listener.user is not None, "the listener is logged in before sessions start"
        live.parts.poster = TranscriptPoster(
            await channels.transcript_sink(transcript_channel, self.listener.user.id, warnings),
            live.parts.transcript,
            list(plan.targets),
            partial_interval_s=self.core.options.partial_interval_s,
            on_error=lambda _text: self.metrics.errors.labels("transcript_post").inc(),
            on_posted=self.metrics.transcript_messages.inc,
        )
        running = RunningSession(
            live,
            guild,
            plan.voice_channel,
            transcript_channel,
            plan.source,
            plan.targets,
            placed.placements,
            rest,
            placed.slots,
            plan.continues,
        )
        return Built(running, warnings)

    async def _start_stream(self, plan: StartPlan, undo: AsyncExitStack) -> tuple[StreamingSession, RecordingRest]:
        task = build_task(plan.source, list(plan.targets), voices=plan.prefs.voices)
        rest = self.palabra.recording(plan.session_id)
        try:
            streaming = await StreamingSession.start(
                credentials=self.core.credentials,
                task=task,
                api_url=self.core.settings.palabra_api_url,
                rest=rest,
                idle_pause_s=self.core.settings.idle_pause_s,
            )
        except PalabraError as exc:
            log.error("session %s: Palabra did not start: %s", plan.session_id, exc)
            self.metrics.errors.labels("palabra_start").inc()
            await self.palabra.delete_created(rest)
            raise PalabraUnavailable(palabra_problem(exc)) from None
        undo.push_async_callback(_logged_step(streaming.close))
        undo.push_async_callback(_logged_step(lambda: self.palabra.delete_created(rest)))
        return streaming, rest

    def _live_session(
        self,
        plan: StartPlan,
        vc: ListeningVoiceClient,
        streaming: StreamingSession,
        on_stop: Callable[[LiveSession, str], None],
        bot_user_ids: set[int],
    ) -> LiveSession:
        prefs, guild = plan.prefs, plan.guild
        mixer = PrebufferedMixer()
        for user_id in plan.opted_out:
            mixer.exclude(user_id)
        config = SessionConfig(
            session_id=plan.session_id,
            guild_id=guild.id,
            source_channel_id=plan.voice_channel.id,
            transcript_channel_id=plan.transcript_channel.id,
            source=plan.source,
            targets=list(plan.targets),
            session_rate=SESSION_SAMPLE_RATE,
            auto_stop_empty_s=float(prefs.auto_stop_empty_seconds),
            auto_stop_max_s=float(prefs.auto_stop_max_seconds) if prefs.auto_stop_max_seconds else None,
            tail_silence_s=self.core.options.session.tail_silence_s,
            stream_lead_s=self.core.options.session.stream_lead_s,
            drain_timeout_s=self.core.options.session.drain_timeout_s,
        )
        return LiveSession(
            config,
            SessionParts(vc, streaming, None, Transcript()),
            mixer=mixer,
            bot_user_ids=bot_user_ids,
            resolve_speaker=lambda uid: user_speaker(guild, uid),
            on_stop=on_stop,
            on_latency=self.metrics.latency.observe,
            store=TranscriptStore(
                self.core.database, plan.session_id, on_error=self.metrics.errors.labels("database").inc
            ),
            metrics=self.metrics,
        )


def start_failure(exc: BaseException) -> BaseException:
    """What a failed start tells the user: each failure as itself. Only Palabra's errors are "the
    translation service"; the database, the voice connection and libopus each say what they are."""
    if isinstance(exc, UserFacingError):
        return exc
    if isinstance(exc, PalabraError):
        return PalabraUnavailable(palabra_problem(exc))
    if is_database_failure(exc):
        return DatabaseProblem()
    if isinstance(exc, OpusUnavailable):
        return VoiceUnavailable(
            "The bot cannot play or encode voice on its host (libopus is missing); ask the bot's operator."
        )
    if isinstance(exc, (discord.HTTPException, discord.ClientException, VoiceError)):
        return VoiceUnavailable()
    return exc


def is_database_failure(exc: BaseException) -> bool:
    return isinstance(exc, (SQLAlchemyError, DatabaseError))


async def end_row(core: Core, session_id: int, reason: str) -> None:
    """Record the end of a session (releasing its lease rows); a failure is logged, not raised."""
    try:
        async with core.database.session() as s:
            await db_sessions.stop_session(s, session_id, reason=reason[:64])
    except Exception:
        log.exception("could not record the end of session %s", session_id)


def _logged_step(step: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    """An undo step for a start that failed halfway: its own failure is logged, the others still run."""

    async def run() -> None:
        try:
            await step()
        except Exception:
            log.exception("cleaning up a failed start")

    return run
