"""One bench session wired from the product's own parts, with timestamps at every stage.

    UDP socket (a reader thread per session, as discord.py has) -> VoiceReceiver (parse, transport +
    DAVE decrypt, jitter buffer, Opus decode on its worker thread) -> event loop -> PrebufferedMixer +
    MixerClock -> discord_to_session resampler -> StreamingSession (to the echo process over WebSocket)
    -> output audio per language -> TranslationSource -> Outlet on the PlaybackClock -> LoopbackSpeaker
    (DAVE encrypt + RTP header + transport encrypt + sendto the traffic process's counting sink)

This mirrors bot/interpretation/session.py (the same constants: stream lead, prebuffer, session rate),
without Discord's gateway or the database. Talkers' packets arrive from the traffic process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bot.audio.frames import FRAME_S, FRAME_SAMPLES
from bot.audio.mixer import MixerClock, PrebufferedMixer
from bot.audio.resample import discord_to_session
from bot.palabra import protocol as p
from bot.palabra.task import SESSION_SAMPLE_RATE
from bot.voice.playback import TranslationSource
from bot.voice.playback_clock import OPUS_SILENCE, Outlet, PlaybackClock
from bot.voice.receiver import VoiceReceiver
from bot.voice.rtp import build_header
from bot.voice.transport import AES_GCM, TransportCipher

SESSION_RATE = SESSION_SAMPLE_RATE
LANGUAGES = ("es", "fr")


@dataclass
class Identities:
    """User ids, SSRCs and DAVE sessions of one bench session's voice channel."""

    index: int
    bot: int
    talkers: tuple[int, int]
    speakers: tuple[int, int]
    dave: dict[int, Any]
    key: bytes = field(default_factory=lambda: os.urandom(32))

    @classmethod
    def build(cls, index: int) -> Identities:
        from bot.voice.dave_server import dave_group

        base = 10_000 + index * 10
        bot, talkers, speakers = base, (base + 1, base + 2), (base + 3, base + 4)
        group = dave_group([bot, *talkers, *speakers], channel_id=1_000_000_000_000 + index)
        return cls(index, bot, talkers, speakers, group)

    def ssrc(self, user_id: int) -> int:
        return user_id  # unique across the run, easy to trace


class BenchMixer(PrebufferedMixer):
    """Records, per tick, the newest spoken time among the frames it mixed (and their push times)."""

    def __init__(self) -> None:
        super().__init__()
        self.shadow: dict[int, deque[tuple[float, float]]] = {}  # user -> (spoken, pushed) per frame inside
        self.last_mixed: list[tuple[float, float]] = []

    def inside(self, user_id: int) -> int:
        held = self._held.get(user_id)
        return self.queued(user_id) + (len(held[1]) if held else 0)

    def push_timed(self, user_id: int, frame: bytes, spoken: float, pushed: float) -> None:
        before = self.inside(user_id)
        self.push(user_id, frame)
        dropped = before + 1 - self.inside(user_id)
        shadow = self.shadow.setdefault(user_id, deque())
        shadow.append((spoken, pushed))
        for _ in range(max(0, dropped)):
            shadow.popleft()

    def tick(self) -> bytes:
        if not self.shadow:  # nothing timed (capacity and idle runs): the product's mixer, unchanged
            return super().tick()
        before = {user: self.inside(user) for user in self.shadow}
        frame = super().tick()
        mixed = []
        for user, count in before.items():
            shadow = self.shadow[user]
            for _ in range(max(0, count - self.inside(user))):
                if shadow:
                    mixed.append(shadow.popleft())
        self.last_mixed = mixed
        return frame


class LoopbackSpeaker:
    """A speaker's voice connection: what discord.VoiceClient.send_audio_packet does, to a UDP sink."""

    def __init__(self, ids: Identities, user_id: int, sink: tuple[str, int], sock: socket.socket) -> None:
        self.dave, self.ssrc, self.sink, self.sock = ids.dave[user_id], ids.ssrc(user_id), sink, sock
        self.cipher = TransportCipher(AES_GCM, ids.key)
        self.timestamp = 0
        self.sequence = 0
        self.nonce = 0
        self.sent = 0
        self.waiting: deque[list[float]] = deque()  # [arrival, fed] of utterances not yet sent
        self.egress: list[tuple[list[float], float, float]] = []  # ([arrival, fed], send start, sent)

    def is_connected(self) -> bool:
        return True

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        start = time.monotonic()
        self.sequence = (self.sequence + 1) & 0xFFFF
        frame = data if data == OPUS_SILENCE else self.dave.encrypt_opus(data)
        header = build_header(self.sequence, self.timestamp, self.ssrc)
        self.nonce += 1
        self.sock.sendto(self.cipher.encrypt(header, frame, self.nonce), self.sink)
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.sent += 1
        if self.waiting and data != OPUS_SILENCE:
            self.egress.append((self.waiting.popleft(), start, time.monotonic()))


class BenchSession:
    def __init__(self, ids: Identities, echo_port: int, sink: tuple[str, int], clock: PlaybackClock, mode: str) -> None:
        self.ids, self.echo_port, self.mode = ids, echo_port, mode
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.sock.settimeout(0.5)
        self.receiver = VoiceReceiver(self.loop, lambda: (ids.dave[ids.bot], 1), own_user_id=ids.bot)
        self.mixer = BenchMixer()
        self.resampler = discord_to_session(SESSION_RATE)
        # As LiveSession without floor audio; the latency run maps every tick to its chunk, so one by one.
        silence = self._on_silent_ticks if mode != "utterances" else None
        self.clock = MixerClock(self.mixer, self._on_tick, max_catch_up=25, on_silence=silence)
        self.out_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.speakers = [LoopbackSpeaker(ids, uid, sink, self.out_sock) for uid in ids.speakers]
        self.sources = {lang: TranslationSource() for lang in LANGUAGES}
        self.outlets = [Outlet(spk, self.sources[lang]) for spk, lang in zip(self.speakers, LANGUAGES, strict=True)]
        self.playback_clock = clock
        self.talk_start: dict[int, float] = {}  # talker -> monotonic time its packet 0 was sent
        self.ticks: list[tuple[float, float | None, list[tuple[float, float]], int]] = []
        self.stream_bytes = 0
        self.lead_bytes = 0
        self._stopping = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.streaming: Any = None

    async def start(self, lead_s: float, idle_pause_s: float | None = None) -> None:
        from bot.palabra.credentials import Credentials
        from bot.palabra.streaming import StreamingSession
        from bot.palabra.task import build_task

        ids = self.ids
        gateway = [
            {"op": 2, "d": {"ssrc": ids.ssrc(ids.bot)}},
            {"op": 4, "d": {"mode": AES_GCM, "secret_key": list(ids.key)}},
        ] + [{"op": 5, "d": {"ssrc": ids.ssrc(t), "user_id": t, "speaking": 1}} for t in ids.talkers]
        for message in gateway:
            self.receiver.on_gateway_message(message)
        self.receiver.start()
        threading.Thread(target=self._read_udp, name=f"bench-udp-{ids.index}", daemon=True).start()
        task = build_task("en", list(LANGUAGES))
        task.update(bench_id=ids.index, bench_mode=self.mode)
        self.streaming = await StreamingSession.start(
            credentials=Credentials.from_api_key("bench-key"),
            task=task,
            api_url=f"http://127.0.0.1:{self.echo_port}",
            idle_pause_s=idle_pause_s,
        )
        self.lead_bytes = int(lead_s * SESSION_RATE) * 2
        if self.lead_bytes:
            await self.streaming.send_audio(bytes(self.lead_bytes))
        self.stream_bytes = self.lead_bytes
        self.clock.start()
        self._tasks = [
            asyncio.create_task(self._consume_frames()),
            asyncio.create_task(self._consume_events()),
        ]
        for outlet in self.outlets:
            self.playback_clock.attach(outlet)

    def _read_udp(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.receiver.on_datagram(data)

    async def _consume_frames(self) -> None:
        if self.mode != "utterances":  # no per-frame bookkeeping outside the latency run
            async for frame in self.receiver.frames():
                self.mixer.push(frame.user_id, frame.pcm)
            return
        async for frame in self.receiver.frames():
            start = self.talk_start.get(frame.user_id)
            spoken = start + (frame.timestamp // FRAME_SAMPLES) * FRAME_S if start is not None else 0.0
            if frame.kind != "audio":
                spoken = 0.0
            self.mixer.push_timed(frame.user_id, frame.pcm, spoken, time.monotonic())

    async def _on_silent_ticks(self, count: int) -> None:
        await self._send(self.resampler.process_silence(count))  # as LiveSession does

    async def _on_tick(self, frame: bytes) -> None:
        now = time.monotonic()
        mixed = self.mixer.last_mixed  # floor audio is off in the bench, as by default
        await self._send(self.resampler.process(frame))
        if self.mode == "utterances":  # only the latency run maps chunks back to ticks
            spoken = max((s for s, _p in mixed if s), default=None)
            self.ticks.append((now, spoken, mixed, self.stream_bytes))

    async def _send(self, pcm: bytes) -> None:
        if pcm:
            await self.streaming.send_audio(pcm)
            self.stream_bytes += len(pcm)

    async def _consume_events(self) -> None:
        async for event in self.streaming:
            if not isinstance(event, p.OutputAudio):
                continue
            arrival = time.monotonic()
            tid = event.transcription_id
            if "@" in tid:  # the echo stamps utterances with their send time
                arrival = float(tid.split("@", 1)[1])
            index = LANGUAGES.index(event.language) if event.language in LANGUAGES else 0
            source = self.sources[LANGUAGES[index]]
            times = [arrival, arrival]
            if source.queued_seconds == 0 and self.mode == "utterances":
                self.speakers[index].waiting.append(times)  # before feed: the sender may start at once
            source.feed(event.pcm)
            if event.last_chunk:
                source.end_utterance()
            times[1] = time.monotonic()

    async def stop(self) -> None:
        self._stopping.set()
        for outlet in self.outlets:
            self.playback_clock.detach(outlet)
        await self.clock.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.streaming is not None:
            await self.streaming.close()
        self.receiver.stop()
        self.sock.close()
        self.out_sock.close()

    # ---- figures ------------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        jitter = self.receiver.stats()
        outlet_late = sum(o.stats.late + o.stats.skipped for o in self.outlets)
        return {
            "mixer_ticks": self.clock.ticks,
            "mixer_late": self.clock.late + self.clock.skipped,
            "mixer_underruns": self.mixer.underruns,
            "receive_lost": int(jitter.get("jitter_lost", 0)) + int(jitter.get("jitter_late", 0)),
            "frames": int(jitter.get("jitter_frames", 0)),
            "chunks": self.streaming.stats.chunks_sent,
            "chunks_padded": self.streaming.stats.silence_chunks,
            "speaker_ticks": sum(o.stats.ticks for o in self.outlets),
            "speaker_late": outlet_late,
            "speaker_idle": sum(o.stats.idle_ticks + o.stats.silence_sent for o in self.outlets),
            "speaker_encoded": sum(o.stats.encoded for o in self.outlets),
        }
