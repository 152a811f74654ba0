"""Building a session: check what can be checked (`plan`), then assemble it (`build`): the listener in
the voice channel, the consent notice, the Palabra stream, audio flowing, the languages placed, the
transcript poster. A start that fails halfway undoes what it built, newest first, and ends its row."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord

from bot.audio.mixer import PrebufferedMixer
from bot.db import guilds, privacy
from bot.db import sessions as db_sessions
from bot.db.errors import SessionAlreadyActive
from bot.errors import BotError
from bot.interpretation import channels
from bot.interpretation.errors import InterpretationError, PalabraUnavailable, SessionAlreadyRunning
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
from bot.voice.receiver import ListeningVoiceClient

if TYPE_CHECKING:
    from bot.interpretation.leasing import SpeakerLeases
    from bot.metrics import Metrics
    from bot.services import Services

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Requested:
    """What the person (or recovery) asked for."""

    started_by_id: int | None
    started_by_name: str
    source: str | None = None
    targets: tuple[str, ...] = ()


@dataclass
class Built:
    running: RunningSession
    warnings: list[str] = field(default_factory=list)


class SessionStarter:
    def __init__(
        self,
        services: Services,
        listener: discord.Client,
        *,
        instance_id: str,
        metrics: Metrics,
        leases: SpeakerLeases,
        palabra: PalabraSessions,
        partial_interval_s: float,
        session_options: dict[str, Any],
    ) -> None:
        self.services, self.listener, self.instance_id, self.metrics = services, listener, instance_id, metrics
        self.leases, self.palabra = leases, palabra
        self.partial_interval_s, self.session_options = partial_interval_s, session_options

    async def plan(self, guild: discord.Guild, voice_channel: SourceChannel, requested: Requested) -> StartPlan:
        """Check everything that can be checked before anything is built; the session row is written last."""
        services = self.services
        if services.palabra is None or services.credentials is None:
            raise PalabraUnavailable("Palabra credentials are not configured on this bot; ask its operator.")
        async with services.database.session() as s:
            prefs = await guilds.get_or_create_guild_settings(s, guild.id)
            opted_out = await privacy.opted_out_user_ids(s, guild.id)
        source, codes, warnings = check_languages(
            requested.source or prefs.source_language,
            list(requested.targets) if requested.targets else list(prefs.target_languages),
        )
        channels.check_permissions(guild, voice_channel)
        transcript_channel = channels.transcript_channel(guild, prefs.transcript_channel_id, voice_channel, warnings)
        try:
            async with services.database.session() as s:
                row = await db_sessions.start_session(
                    s,
                    guild_id=guild.id,
                    source_channel_id=voice_channel.id,
                    source_language=source,
                    target_languages=codes,
                    instance_id=self.instance_id,
                    text_channel_id=transcript_channel.id,
                    started_by_user_id=requested.started_by_id,
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
                await end_row(self.services, plan.session_id, "failed_to_start")
                if isinstance(exc, InterpretationError):
                    raise
                if isinstance(exc, BotError):
                    raise PalabraUnavailable() from exc
                if isinstance(exc, (discord.HTTPException, discord.ClientException, asyncio.TimeoutError)):
                    raise InterpretationError(
                        "The bot could not join the voice channel; check its permissions and try again."
                    ) from exc
                raise
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
        vc = await plan.voice_channel.connect(
            cls=ListeningVoiceClient, timeout=CONNECT_TIMEOUT_S, reconnect=True, self_deaf=False
        )
        undo.push_async_callback(_logged_step(lambda: vc.disconnect(force=True)))
        vc.receiver.on_failure = DecryptFailureNotices(
            lambda text: transcript_channel.send(text, allowed_mentions=discord.AllowedMentions.none()),
            lambda uid: user_speaker(guild, uid).name,
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
            partial_interval_s=self.partial_interval_s,
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
        )
        return Built(running, warnings)

    async def _start_stream(self, plan: StartPlan, undo: AsyncExitStack) -> tuple[StreamingSession, RecordingRest]:
        task = build_task(plan.source, list(plan.targets), voices=plan.prefs.voices)
        rest = self.palabra.recording(plan.session_id)
        try:
            streaming = await StreamingSession.start(
                credentials=self.services.credentials,
                task=task,
                api_url=self.services.settings.palabra_api_url,
                rest=rest,
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
            **self.session_options,
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
                self.services.database, plan.session_id, on_error=self.metrics.errors.labels("database").inc
            ),
            metrics=self.metrics,
        )


async def end_row(services: Services, session_id: int, reason: str) -> None:
    """Record the end of a session (releasing its lease rows); a failure is logged, not raised."""
    try:
        async with services.database.session() as s:
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
