"""One live interpretation session: a source voice channel to Palabra and back.

    listener voice client -> receiver frames -> Mixer (opted-out users dropped at push)
      -> MixerClock (20 ms) -> resample to the session format -> StreamingSession (paced 320 ms chunks)
    Palabra events -> transcript (attributed with the mixer's ActivityTimeline) -> TranscriptPoster
                   -> output audio per language -> TranslationSource (speaker bot or the listener)

The session's audio timeline (Palabra's segment times) is the mixer's clock shifted by the stream lead
(a little silence sent first): the mixer ticks in real time, silence included, so a segment time minus
the lead is a time on the mixer's activity timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord
from discord.channel import VocalGuildChannel

from bot.audio.frames import SILENT_FRAME
from bot.audio.mixer import Mixer, MixerClock
from bot.audio.resample import discord_to_session
from bot.interpretation import captions
from bot.interpretation.attribution import attribute
from bot.interpretation.ports import ListenerVoice, Playback, TranslationStream
from bot.interpretation.store import FinalLine, StoreEntry, TranscriptStore, Translation
from bot.interpretation.transcripts import Line, Speaker, Transcript, TranscriptPoster
from bot.palabra import protocol as p
from bot.palabra.task import SESSION_SAMPLE_RATE

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
DISCONNECTED_GRACE_S = 3.0  # a voice reconnect (4015/4006) is not a kick
TAIL_SILENCE_S = 1.0  # silence sent before end_task so Palabra confirms the last sentence
DRAIN_TIMEOUT_S = 15.0
# Silence sent ahead of the mixer's first frame. The stream sends a 320 ms chunk on its own schedule and
# pads a chunk that is short at its deadline with zeros; a producer exactly on schedule loses that race
# now and then, which inserts a gap in the middle of speech. This much lead keeps every chunk full, also
# while the idle mixer clock emits its silent ticks in batches (bot.audio.mixer.IDLE_BATCH_TICKS). It
# adds no latency: a chunk is sent as soon as it is full, and with a lead under one chunk (320 ms) it
# fills after its deadline (bench: `latency_breakdown_ms_p95.pacing`).
STREAM_LEAD_S = 0.25
CLOCK_CATCH_UP_TICKS = 25
PLAYOUT_LIMIT_S = 10.0  # at stop, queued translation is played out for at most this long
PLAYOUT_STALL_S = 0.3  # a source not read for this long is not played by anyone (a dead connection)


@dataclass(frozen=True)
class SessionOptions:
    """The session's waits (tests shorten them)."""

    tail_silence_s: float = TAIL_SILENCE_S
    stream_lead_s: float = STREAM_LEAD_S
    drain_timeout_s: float = DRAIN_TIMEOUT_S


@dataclass
class SessionConfig:
    session_id: int
    guild_id: int
    source_channel_id: int
    transcript_channel_id: int
    source: str
    targets: list[str]
    session_rate: int = SESSION_SAMPLE_RATE
    auto_stop_empty_s: float = 300.0
    auto_stop_max_s: float | None = None
    tail_silence_s: float = TAIL_SILENCE_S
    stream_lead_s: float = STREAM_LEAD_S
    drain_timeout_s: float = DRAIN_TIMEOUT_S


@dataclass
class SessionParts:
    """What the manager assembled for the session (it owns their release)."""

    voice_client: ListenerVoice
    streaming: TranslationStream
    poster: TranscriptPoster | None  # attached after placement (audio already flows by then)
    transcript: Transcript
    playbacks: dict[str, Playback] = field(default_factory=dict)  # language -> its playback
    floor_playbacks: list[Playback] = field(default_factory=list)  # those that get the original under them


class LiveSession:
    def __init__(
        self,
        config: SessionConfig,
        parts: SessionParts,
        *,
        mixer: Mixer,
        bot_user_ids: set[int],
        resolve_speaker: Callable[[int], Speaker],
        on_stop: Callable[[LiveSession, str], None],
        on_latency: Callable[[float], None] | None = None,
        store: TranscriptStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config, self.parts, self.mixer = config, parts, mixer
        self.bot_user_ids = bot_user_ids
        self.resolve_speaker, self.on_stop, self.on_latency = resolve_speaker, on_stop, on_latency
        self.store, self.metrics = store, metrics
        self.started_at = time.monotonic()
        self.stopping = False
        self.latencies: list[float] = []
        self.speakers_heard: set[int] = set()
        self._resampler = discord_to_session(config.session_rate)
        # Catch up after a stall for longer than the stream's own re-anchoring (one 320 ms chunk), so the
        # mixer's ticks and the stream's timeline stay aligned through event-loop hiccups.
        self._clock = MixerClock(
            mixer, self._on_mixed_frame, max_catch_up=CLOCK_CATCH_UP_TICKS, on_silence=self._on_silent_ticks
        )
        self._mixer_anchor: float | None = None
        self._skips_seen = 0
        self._utterance_end: dict[str, float] = {}  # transcription id -> segment end (timeline s)
        self._first_audio: dict[str, float] = {}  # transcription id -> monotonic time of first output audio
        self._latency_done: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_stats = {"packets": 0, "transport_failures": 0, "dave_failures": 0}
        self._empty_since: float | None = None  # the channel without people, since
        self._gone_since: float | None = None
        self._bot_check: dict[int, bool] = {}
        self._output_started = False
        self.subscribers: list[captions.TranscriptSubscriber] = []

    # --- running -----------------------------------------------------------------------------------
    async def start_audio(self) -> None:
        """Call right after the stream started, with nothing awaited in between: the lead of silence is
        then the first audio on the stream's timeline, and the mixer's clock starts right behind it."""
        lead = int(self.config.stream_lead_s * self.config.session_rate) * 2
        if lead:
            await self.parts.streaming.send_audio(bytes(lead))
        self._clock.start()
        self._tasks.append(asyncio.create_task(self._consume_frames(), name=f"session-{self.config.session_id}-frames"))

    def start_output(self) -> None:
        """Transcripts, translated audio and the auto-stop watch (events wait in the stream until then)."""
        assert self.parts.poster is not None
        self.parts.poster.start()
        self._tasks.append(asyncio.create_task(self._consume_events(), name=f"session-{self.config.session_id}-events"))
        self._tasks.append(asyncio.create_task(self._watch(), name=f"session-{self.config.session_id}-watch"))
        if self.store is not None:
            # Lines go to the database from the store's own task: a slow commit must not hold up the
            # translated audio that follows them in Palabra's event stream.
            self.store.start()
        self._output_started = True

    async def abort(self) -> None:
        """Stop at once (a start that failed halfway); the stream itself is closed by its owner."""
        self.stopping = True
        await self._clock.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.store is not None:
            await self.store.abort()

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def latency_percentiles(self) -> tuple[float | None, float | None]:
        if not self.latencies:
            return None, None
        if len(self.latencies) == 1:
            return self.latencies[0], self.latencies[0]
        cuts = statistics.quantiles(self.latencies, n=10, method="inclusive")
        return statistics.median(self.latencies), cuts[8]

    def receiver_stats(self) -> Mapping[str, object]:
        return self.parts.voice_client.receiver.stats()

    def receiver_count(self, key: str) -> int:
        """One of the receiver's counters (0 when it has none of that name)."""
        value = self.receiver_stats().get(key, 0)
        return int(value) if isinstance(value, (int, float)) else 0

    async def _consume_frames(self) -> None:
        async for frame in self.parts.voice_client.receiver.frames():
            if self._is_bot(frame.user_id):
                continue
            self.mixer.push(frame.user_id, frame.pcm)

    def _is_bot(self, user_id: int) -> bool:
        """Cached per user once the member is known (this runs for every received frame)."""
        known = self._bot_check.get(user_id)
        if known is None:
            guild = self.parts.voice_client.guild
            if user_id not in self.bot_user_ids and guild.get_member(user_id) is None:
                return False  # not cached yet: treat as a person, ask again next frame
            known = self._bot_check[user_id] = is_bot(guild, user_id, self.bot_user_ids)
        return known

    async def _on_silent_ticks(self, count: int) -> None:
        """`count` ticks nobody spoke in (the idle clock's batch)."""
        if self.parts.floor_playbacks:  # floor audio is mixed under the translation frame by frame
            for _ in range(count):
                await self._on_mixed_frame(SILENT_FRAME)
            return
        await self._before_audio()
        await self._send(self._resampler.process_silence(count))

    async def _on_mixed_frame(self, frame: bytes) -> None:
        """One mixed 20 ms frame."""
        await self._before_audio()
        for source in self.parts.floor_playbacks:
            source.feed_floor(frame)
        await self._send(self._resampler.process(frame))

    async def _before_audio(self) -> None:
        if self._mixer_anchor is None:
            self._mixer_anchor = time.monotonic()
        if self._clock.skipped > self._skips_seen:
            # A long stall drained the stream's buffer (it padded and re-anchored): restore the lead.
            self._skips_seen = self._clock.skipped
            await self._send(bytes(int(self.config.stream_lead_s * self.config.session_rate) * 2), "the lead")

    async def _send(self, pcm: bytes, what: str = "audio") -> None:
        try:
            if pcm:
                await self.parts.streaming.send_audio(pcm)
        except Exception as exc:  # the stream failed or is ending: the events task reports it
            log.debug("session %s: %s not sent: %s", self.config.session_id, what, exc)

    # --- Palabra events ----------------------------------------------------------------------------
    async def _consume_events(self) -> None:
        try:
            async for event in self.parts.streaming:
                try:
                    await self._on_event(event)
                except Exception:
                    log.exception("session %s: handling a Palabra event failed", self.config.session_id)
                    self._count_error("event")
        except Exception as exc:
            if not self.stopping:
                log.error("session %s: the Palabra stream failed: %s", self.config.session_id, exc)
                self._count_error("palabra")
                self.on_stop(self, "palabra_error")
            return
        if not self.stopping:
            log.warning("session %s: the Palabra stream ended unexpectedly", self.config.session_id)
            self.on_stop(self, "palabra_closed")

    async def _on_event(self, event: p.Event) -> None:
        transcript, poster = self.parts.transcript, self.parts.poster
        assert poster is not None
        if isinstance(event, p.OutputAudio):
            self._on_audio(event)
        elif isinstance(event, p.PartialTranscription):
            line = transcript.line(event.transcription_id)
            if line.final:
                return
            line.text, line.language = event.text, event.language
            self._attribute(line, event.segments)
            poster.partial_changed(event.transcription_id)
            self._publish(captions.source_update(self.config.session_id, line))
        elif isinstance(event, p.ValidatedTranscription):
            line = transcript.line(event.transcription_id)
            line.text, line.language, line.final = event.text, event.language, True
            if event.segments:
                line.start, line.end = event.start, event.end
                self._note_end(event.transcription_id, event.end)
            self._attribute(line, event.segments)
            if line.speaker.user_id is not None:
                self.speakers_heard.add(line.speaker.user_id)
            poster.final_changed(event.transcription_id)
            self._publish(captions.source_update(self.config.session_id, line))
            self._store(
                FinalLine(
                    event.transcription_id,
                    line.text,
                    line.speaker.user_id,
                    line.language,
                    dict(line.translations),
                    line.start,
                    line.end,
                )
            )
        elif isinstance(event, p.TranslatedTranscription):
            line = transcript.line(event.transcription_id)
            whole = line.add_translation(event.language, event.text, event.translation_part_id)
            if line.final:
                poster.final_changed(event.transcription_id)
            self._publish(captions.translation_update(self.config.session_id, line, event.language))
            self._store(Translation(event.transcription_id, event.language, whole))
        elif isinstance(event, p.ErrorMessage):
            log.warning("session %s: Palabra error %s: %s", self.config.session_id, event.code, event.desc)
            self._count_error("palabra_message")
        elif isinstance(event, p.Reconnected):
            log.warning("session %s: Palabra stream reconnected (attempt %d)", self.config.session_id, event.attempt)

    def subscribe(self, subscriber: captions.TranscriptSubscriber) -> None:
        """Live transcript updates from now on, after every line so far (once per subscriber)."""
        if subscriber in self.subscribers:
            return
        self.subscribers.append(subscriber)
        lines = list(self.parts.transcript.lines.values())
        for update in captions.current_updates(self.config.session_id, lines):
            subscriber.caption_updated(update)

    def _publish(self, update: captions.CaptionUpdate) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber.caption_updated(update)
            except Exception:  # a subscriber's bug must not stop the interpretation
                log.exception("session %s: a transcript subscriber failed", self.config.session_id)

    def _store(self, entry: StoreEntry) -> None:
        if self.store is not None and self._output_started:
            self.store.add(entry)

    def _attribute(self, line: Line, segments: tuple[p.Segment, ...]) -> None:
        if not segments:
            return
        user_id = attribute(self.mixer.timeline, [_shift(seg, -self.config.stream_lead_s) for seg in segments])
        if isinstance(user_id, int):
            line.speaker = self.resolve_speaker(user_id)

    def _on_audio(self, event: p.OutputAudio) -> None:
        source = self.parts.playbacks.get(event.language)
        if source is not None:
            source.feed(event.pcm)
            if event.last_chunk:
                source.end_utterance()
        tid = event.transcription_id
        if tid not in self._first_audio:
            self._first_audio[tid] = time.monotonic()
            self._measure(tid)

    def _note_end(self, tid: str, end_s: float | None) -> None:
        if end_s is not None:
            self._utterance_end[tid] = end_s
            self._measure(tid)

    def _measure(self, tid: str) -> None:
        """Utterance end on the timeline (as wall clock) -> first translated audio, once per utterance."""
        if tid in self._latency_done or self._mixer_anchor is None:
            return
        end_s, audio_at = self._utterance_end.get(tid), self._first_audio.get(tid)
        if end_s is None or audio_at is None:
            return
        self._latency_done.add(tid)
        latency = audio_at - (self._mixer_anchor + end_s - self.config.stream_lead_s)
        self.latencies.append(latency)
        if self.on_latency is not None:
            self.on_latency(latency)
        log.info(
            "session %s: utterance %s: %.2f s from its end to the first translated audio",
            self.config.session_id,
            tid,
            latency,
        )

    # --- auto-stop ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while not self.stopping:
            await asyncio.sleep(WATCH_INTERVAL_S)
            self._export_stats()
            reason = self._stop_reason_now(time.monotonic())
            if reason is not None and not self.stopping:
                log.info("session %s: stopping (%s)", self.config.session_id, reason)
                self.on_stop(self, reason)
                return

    def _stop_reason_now(self, now: float) -> str | None:
        config = self.config
        if config.auto_stop_max_s and now - self.started_at >= config.auto_stop_max_s:
            return "max_duration"
        where = self._listener_channel_id()
        if where is None:
            self._gone_since = self._gone_since or now
            if now - self._gone_since >= DISCONNECTED_GRACE_S:
                return "bot_disconnected"
        else:
            self._gone_since = None
            if where != config.source_channel_id:
                return "bot_moved"
        if humans_in(self.parts.voice_client.channel, self.bot_user_ids) == 0:
            self._empty_since = self._empty_since or now
            if now - self._empty_since >= config.auto_stop_empty_s:
                return "channel_empty"
        else:
            self._empty_since = None
        return None

    def _listener_channel_id(self) -> int | None:
        vc = self.parts.voice_client
        me = vc.guild.me
        state = me.voice if me is not None else None
        if state is None or state.channel is None:
            return None if not vc.is_connected() else vc.channel.id
        return state.channel.id

    def _export_stats(self) -> None:
        if self.metrics is None:
            return
        now = {key: self.receiver_count(key) for key in self._last_stats}
        delta = {key: now[key] - self._last_stats[key] for key in now}
        if delta["packets"] > 0:
            self.metrics.packets.inc(delta["packets"])
        for key, stage in (("transport_failures", "transport"), ("dave_failures", "dave")):
            if delta[key] > 0:
                self.metrics.decrypt_failures.labels(stage).inc(delta[key])
        self._last_stats = now

    def _count_error(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(kind).inc()

    # --- stopping ----------------------------------------------------------------------------------
    async def wind_down(self) -> None:
        """No more input; the tail is sent and end_task awaited (bounded); transcripts drained (bounded);
        queued translation played out (bounded). Releasing resources is the manager's part."""
        self.stopping = True
        current = asyncio.current_task()
        frames, events, watch = ([*self._tasks, None, None, None])[:3]
        for task in (frames, watch):
            if task is not None and task is not current:
                task.cancel()
        await asyncio.sleep(self.config.tail_silence_s)  # the clock keeps ticking silence meanwhile
        await self._clock.stop()
        with contextlib.suppress(Exception):
            await self.parts.streaming.send_audio(self._resampler.flush())
        try:
            await self.parts.streaming.end(timeout=self.config.drain_timeout_s)
        except Exception as exc:
            log.warning("session %s: ending the Palabra stream failed: %s", self.config.session_id, exc)
            await self.parts.streaming.close()
        if events is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(events, timeout=5.0)
        if self.store is not None:
            await self.store.close(timeout=self.config.drain_timeout_s)
        if self.parts.poster is not None:
            await self.parts.poster.drain(timeout=self.config.drain_timeout_s)
            await self.parts.poster.close()
        await self._play_out()
        for task in self._tasks:
            if not task.done() and task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not current), return_exceptions=True)
        for subscriber in self.subscribers:
            with contextlib.suppress(Exception):
                subscriber.session_ended(self.config.session_id)

    async def _play_out(self) -> None:
        """Play out queued translation (bounded). A source nobody reads any more (its voice connection
        is dead: a kicked speaker) is not waited for: its queue would never drain."""
        deadline = time.monotonic() + PLAYOUT_LIMIT_S
        waiting = {id(s): (s, getattr(s, "frames_played", 0), time.monotonic()) for s in self.parts.playbacks.values()}
        while waiting and time.monotonic() < deadline:
            now = time.monotonic()
            for key, (source, played, read_at) in list(waiting.items()):
                frames = getattr(source, "frames_played", 0)
                if getattr(source, "queued_seconds", 0.0) <= 0.0:
                    del waiting[key]
                elif frames != played:
                    waiting[key] = (source, frames, now)
                elif now - read_at >= PLAYOUT_STALL_S:
                    log.info(
                        "session %s: a translation source is not being played; not waiting for it",
                        self.config.session_id,
                    )
                    del waiting[key]
            if waiting:
                await asyncio.sleep(0.05)


def _shift(segment: p.Segment, offset_s: float) -> p.Segment:
    return segment.shifted(offset_s) if offset_s else segment


def is_bot(guild: discord.Guild | None, user_id: int, our_bots: set[int]) -> bool:
    """Our own bots and any other application's bot (a music bot, say): only people are interpreted."""
    if user_id in our_bots:
        return True
    member = guild.get_member(user_id) if guild is not None else None
    return member is not None and member.bot


def humans_in(channel: VocalGuildChannel, our_bots: set[int]) -> int:
    return sum(not is_bot(channel.guild, user_id, our_bots) for user_id in channel.voice_states)


def user_speaker(guild: discord.Guild | None, user_id: int) -> Speaker:
    member = guild.get_member(user_id) if guild is not None else None
    if member is None:
        return Speaker(user_id, f"User {user_id}")
    return Speaker(user_id, member.display_name, member.display_avatar.url)
