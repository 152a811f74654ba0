"""LiveSession on its own, against the fakes of tests/fakes/interpretation (the shapes of
bot.interpretation.ports): Palabra's events reach the transcript, the store and the playbacks; only people
reach the stream; a failed or ended stream asks to stop; the auto-stop rules on a fake clock; wind-down."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.mixer import PrebufferedMixer
from bot.interpretation.session import STREAM_LEAD_S, LiveSession, SessionConfig, SessionParts
from bot.interpretation.store import FinalLine, Translation
from bot.interpretation.transcripts import Speaker, Transcript, TranscriptPoster
from bot.palabra import protocol as p
from bot.palabra.errors import SessionClosedError
from tests.fakes.interpretation import (
    FRAME_BYTES,
    FakeChannel,
    FakeGuild,
    FakeListenerVoice,
    FakePlayback,
    FakeStream,
    RecordingSink,
    RecordingStore,
    member,
)
from tests.interpretation.conftest import wait_for

pytestmark = pytest.mark.timeout(30)

ALICE, MUSIC_BOT, LISTENER = 5, 6, 999
SOURCE_CHANNEL = 10


class World:
    def __init__(self, *, auto_stop_empty_s: float = 60.0, auto_stop_max_s: float | None = None) -> None:
        self.guild = FakeGuild(members=[member(ALICE), member(MUSIC_BOT, bot=True)], me_id=LISTENER)
        self.channel = FakeChannel(SOURCE_CHANNEL, self.guild, {ALICE: object(), LISTENER: object()})
        self.voice = FakeListenerVoice(self.guild, self.channel)
        self.stream, self.playback, self.store, self.sink = (
            FakeStream(),
            FakePlayback(),
            RecordingStore(),
            RecordingSink(),
        )
        self.transcript = Transcript()
        self.poster = TranscriptPoster(self.sink, self.transcript, ["es"], partial_interval_s=0.05)
        self.stops: list[str] = []
        self.pushed: list[int] = []
        config = SessionConfig(
            session_id=1,
            guild_id=self.guild.id,
            source_channel_id=SOURCE_CHANNEL,
            transcript_channel_id=SOURCE_CHANNEL,
            source="en",
            targets=["es"],
            auto_stop_empty_s=auto_stop_empty_s,
            auto_stop_max_s=auto_stop_max_s,
            tail_silence_s=0.0,
            drain_timeout_s=2.0,
        )
        parts = SessionParts(self.voice, self.stream, self.poster, self.transcript, {"es": self.playback})
        parts.floor_playbacks.append(self.playback)
        mixer = PrebufferedMixer()
        original_push = mixer.push

        def recording_push(user_id: int, frame: bytes) -> bool:
            self.pushed.append(user_id)
            return original_push(user_id, frame)

        mixer.push = recording_push  # type: ignore[method-assign]
        self.live = LiveSession(
            config,
            parts,
            mixer=mixer,
            bot_user_ids={LISTENER},
            resolve_speaker=lambda uid: Speaker(uid, f"user {uid}"),
            on_stop=lambda _live, reason: self.stops.append(reason),
            store=self.store,
        )


def tone(seconds: float, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(48000 * seconds)) / 48000
    mono = (np.sin(2 * np.pi * 440 * t) * amplitude * 32767).astype("<i2")
    return np.repeat(mono, 2).tobytes()


async def test_events_reach_the_transcript_the_store_and_the_playback():
    world = World()
    world.live.start_output()
    segment = (p.Segment("hello there", 0.5, 1.5),)
    world.stream.push(p.PartialTranscription("u1", "en", "hello", segment))
    world.stream.push(p.ValidatedTranscription("u1", "en", "hello there", segment))
    world.stream.push(p.TranslatedTranscription("u1", "es", "hola", segment))
    audio = bytes(range(256)) * 10
    world.stream.push(p.OutputAudio("u1", "es", audio[:1280]))
    world.stream.push(p.OutputAudio("u1", "es", audio[1280:], last_chunk=True))
    world.stream.push(p.OutputAudio("u1", "de", b"\x01\x02"))  # not a target: nowhere to play, no error

    await wait_for(lambda: any("hola" in text for text in world.sink.messages.values()), 10, "the final posted")
    await wait_for(lambda: len(world.store.entries) == 2, 10, "the store entries")
    assert bytes(world.playback.fed) == audio and world.playback.utterances_ended == 1
    line = world.transcript.line("u1")
    assert line.final and line.text == "hello there" and line.translations == {"es": "hola"}
    assert (line.start, line.end) == (0.5, 1.5)
    final, translation = world.store.entries
    assert isinstance(final, FinalLine) and (final.transcription_id, final.text) == ("u1", "hello there")
    assert translation == Translation("u1", "es", "hola")
    assert world.store.started and world.stops == []
    await world.live.wind_down()
    assert world.stream.ended and world.store.closed


async def test_only_people_reach_the_stream():
    world = World()
    await world.live.start_audio()
    lead = bytes(world.stream.sent)
    assert len(lead) == int(STREAM_LEAD_S * 16000) * 2 and not any(lead)  # the silent lead comes first
    speech = tone(0.4)
    for index in range(len(speech) // FRAME_BYTES):
        frame = speech[index * FRAME_BYTES : (index + 1) * FRAME_BYTES]
        for user_id in (ALICE, MUSIC_BOT, LISTENER):
            world.voice.receiver.push(user_id, frame, index)
    sent = lambda: np.frombuffer(bytes(world.stream.sent[len(lead) :]), "<i2")  # noqa: E731
    await wait_for(lambda: len(sent()) > 0 and np.abs(sent()).max() > 3000, 10, "Alice's speech in the stream")
    await wait_for(lambda: world.pushed.count(ALICE) == len(speech) // FRAME_BYTES, 10, "every frame of Alice's")
    assert set(world.pushed) == {ALICE}  # another application's bot and our own never reach the mixer
    assert len(world.playback.floor) > 0  # the floor playback hears the original
    await world.live.abort()


@pytest.mark.parametrize(
    ("ending", "reason"), [("fail", "palabra_error"), ("finish", "palabra_closed")], ids=["failed", "ended"]
)
async def test_a_stream_that_fails_or_ends_asks_to_stop(ending, reason):
    world = World()
    world.live.start_output()
    if ending == "fail":
        world.stream.fail(SessionClosedError("reconnects exhausted"))
    else:
        world.stream.finish()
    await wait_for(lambda: world.stops, 10, "the stop request")
    assert world.stops == [reason]
    await world.live.abort()


def test_auto_stop_rules_on_a_fake_clock():
    world = World(auto_stop_empty_s=30.0, auto_stop_max_s=600.0)
    live, t0 = world.live, world.live.started_at
    assert live._stop_reason_now(t0 + 1) is None

    del world.channel.voice_states[ALICE]  # only bots left: the empty countdown starts
    assert live._stop_reason_now(t0 + 10) is None
    assert live._stop_reason_now(t0 + 39) is None
    world.channel.voice_states[ALICE] = object()  # back in time: the countdown resets
    assert live._stop_reason_now(t0 + 41) is None
    del world.channel.voice_states[ALICE]
    assert live._stop_reason_now(t0 + 50) is None
    assert live._stop_reason_now(t0 + 80.5) == "channel_empty"
    world.channel.voice_states[ALICE] = object()

    world.guild.me.voice, world.voice.connected = None, False  # a voice reconnect, then a real disconnect
    assert live._stop_reason_now(t0 + 100) is None
    world.guild.me.voice, world.voice.connected = type(world.guild.me)(channel=world.channel), True
    assert live._stop_reason_now(t0 + 102) is None  # back within the grace period
    world.guild.me.voice, world.voice.connected = None, False
    assert live._stop_reason_now(t0 + 110) is None
    assert live._stop_reason_now(t0 + 113.5) == "bot_disconnected"

    world.guild.me.voice, world.voice.connected = type(world.guild.me)(channel=FakeChannel(11, world.guild)), True
    assert live._stop_reason_now(t0 + 120) == "bot_moved"
    world.guild.me.voice.channel = world.channel
    assert live._stop_reason_now(t0 + 599) is None
    assert live._stop_reason_now(t0 + 600.5) == "max_duration"


async def test_a_stall_after_the_stream_failed_does_not_kill_the_mixer_clock():
    """After a long stall the session restores the stream's lead; if the stream has failed meanwhile (the
    stop is on its way), that send fails like every other and the frame path goes on."""
    world = World()

    async def closed(_pcm: bytes) -> None:
        raise SessionClosedError("the stream failed")

    world.stream.send_audio = closed  # type: ignore[method-assign]
    world.live._clock.skipped += 1  # a stall longer than the clock's catch-up
    await world.live._on_mixed_frame(bytes(FRAME_BYTES))  # raised SessionClosedError before
    assert world.live._skips_seen == world.live._clock.skipped
