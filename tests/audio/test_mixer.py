import asyncio

import numpy as np
import pytest

from bot.audio.frames import SILENT_FRAME, FrameAssembler
from bot.audio.mixer import ActivityTimeline, Mixer, MixerClock
from tests.fakes import audio
from tests.fakes.virtual_time import run_on_virtual_time

RATE = 48000


@pytest.fixture(scope="module")
def speech_a() -> list[bytes]:
    return FrameAssembler().feed(audio.decode(audio.SPEECH_A))


@pytest.fixture(scope="module")
def speech_b() -> list[bytes]:
    return FrameAssembler().feed(audio.decode(audio.SPEECH_B))


def mix_all(mixer: Mixer, streams: dict[str, list[bytes]], ticks: int) -> bytes:
    """Push one frame per user per tick (frames arrive just in time) and collect the mix."""
    out = []
    for tick in range(ticks):
        for user_id, frames in streams.items():
            if tick < len(frames):
                mixer.push(user_id, frames[tick])
        out.append(mixer.tick())
    return b"".join(out)


def test_mix_of_two_users_contains_both(speech_a, speech_b):
    ticks = min(len(speech_a), len(speech_b))
    mixed = audio.mono(mix_all(Mixer(), {"a": speech_a, "b": speech_b}, ticks), 2)
    a = audio.mono(b"".join(speech_a[:ticks]), 2)
    b = audio.mono(b"".join(speech_b[:ticks]), 2)

    assert np.max(np.abs(mixed - np.clip(a + b, -1, 32767 / 32768))) <= 1 / 32768
    energy_a, energy_b = np.sum(a**2), np.sum(b**2)
    with_a, with_b = audio.xcorr(a, mixed, max_lag=RATE), audio.xcorr(b, mixed, max_lag=RATE)
    assert with_a.lag == 0 and with_b.lag == 0
    # Uncorrelated voices: each one's share of the mix is sqrt(its energy / total energy).
    assert with_a.peak == pytest.approx(np.sqrt(energy_a / (energy_a + energy_b)), abs=0.05)
    assert with_b.peak == pytest.approx(np.sqrt(energy_b / (energy_a + energy_b)), abs=0.05)
    assert audio.xcorr(a, mixed - b, max_lag=RATE).peak > 0.999


def test_sum_saturates_instead_of_wrapping():
    loud = audio.to_pcm(np.full(960, 0.9), channels=2)
    quiet_negative = audio.to_pcm(np.full(960, -0.2), channels=2)
    mixer = Mixer()
    mixer.push(1, loud)
    mixer.push(2, loud)
    assert set(audio.from_pcm(mixer.tick())) == {32767 / 32768}
    mixer.push(1, loud)
    mixer.push(2, quiet_negative)
    assert audio.from_pcm(mixer.tick())[0] == pytest.approx(0.7, abs=1 / 32768)


def test_silence_when_nobody_speaks(speech_a):
    mixer = Mixer()
    assert mixer.tick() == SILENT_FRAME
    mixer.push("a", speech_a[40])
    assert mixer.tick() == speech_a[40]
    assert mixer.tick() == SILENT_FRAME
    assert mixer.stats.ticks == 3 and mixer.stats.frames_mixed == 1


def test_opted_out_user_is_never_mixed(speech_a, speech_b):
    ticks = min(len(speech_a), len(speech_b))
    mixer = Mixer()
    mixer.exclude("b")
    mixed = audio.mono(mix_all(mixer, {"a": speech_a, "b": speech_b}, ticks), 2)
    a = audio.mono(b"".join(speech_a[:ticks]), 2)
    b = audio.mono(b"".join(speech_b[:ticks]), 2)
    assert audio.xcorr(a, mixed, max_lag=RATE).peak > 0.999
    assert abs(audio.xcorr(b, mixed, max_lag=RATE).peak) < 0.1
    assert mixer.stats.dropped_excluded == ticks
    assert mixer.queued("b") == 0
    assert [user for user, _ in mixer.timeline.speakers_between(0, ticks * 0.02)] == ["a"]

    mixer.include("b")
    assert mixer.push("b", speech_b[50]) is True
    assert mixer.tick() == speech_b[50]


def test_exclude_discards_what_was_already_queued(speech_a):
    mixer = Mixer()
    for frame in speech_a[30:35]:
        mixer.push("a", frame)
    mixer.exclude("a")
    assert mixer.stats.dropped_excluded == 5
    assert mixer.tick() == SILENT_FRAME


def test_queue_is_bounded_and_drops_oldest(speech_a):
    mixer = Mixer(max_queue_frames=10)
    for frame in speech_a[:50]:
        mixer.push("late", frame)
    assert mixer.queued("late") == 10
    assert mixer.stats.dropped_overflow == {"late": 40}
    assert [mixer.tick() for _ in range(10)] == speech_a[40:50]
    assert mixer.tick() == SILENT_FRAME


def test_bad_frame_size_is_rejected():
    with pytest.raises(ValueError, match="3840"):
        Mixer().push(1, bytes(100))


def test_activity_timeline_attributes_the_right_user(speech_a, speech_b):
    # a speaks first, then b (their files laid end to end on the mixer's clock).
    offset = len(speech_a)
    streams = {"a": speech_a, "b": [SILENT_FRAME] * offset + speech_b}
    mixer = Mixer()
    mix_all(mixer, streams, offset + len(speech_b))

    regions_a = audio.speech_regions(audio.fixture_signal(audio.SPEECH_A), RATE)
    regions_b = audio.speech_regions(audio.fixture_signal(audio.SPEECH_B), RATE)
    b_start = offset * 0.02
    for start, end in regions_a:
        speakers = mixer.timeline.speakers_between(start, end)
        assert [user for user, _ in speakers] == ["a"]
        assert speakers[0][1] > 0.6 * (end - start)
    for start, end in regions_b:
        speakers = mixer.timeline.speakers_between(b_start + start, b_start + end)
        assert [user for user, _ in speakers] == ["b"]
    # A window over the last sentence of a and the first of b: both, the longer talker first.
    (a_start, a_end), (b0, b1) = regions_a[-1], regions_b[0]
    window = mixer.timeline.speakers_between(a_start, b_start + b1)
    expected_first = "a" if a_end - a_start > b1 - b0 else "b"
    assert {user for user, _ in window} == {"a", "b"} and window[0][0] == expected_first


def test_activity_timeline_runs_and_pruning():
    timeline = ActivityTimeline(retain_s=1.0)
    for tick in range(10):
        timeline.record(tick, ["x"])
    for tick in range(20, 25):
        timeline.record(tick, ["x", "y"])
    assert timeline.seconds_active("x", 0, 1) == pytest.approx(0.3)
    assert timeline.speakers_between(0.25, 0.35) == []  # the gap between the runs
    assert timeline.speakers_between(0.0, 10) == [("x", pytest.approx(0.3)), ("y", pytest.approx(0.1))]
    timeline.record(70, ["y"])  # 1 s retention: ticks before 20 are forgotten
    assert timeline.seconds_active("x", 0, 0.2) == 0
    assert timeline.seconds_active("x", 0.4, 0.5) == pytest.approx(0.1)


def test_mixer_clock_ticks_on_schedule(speech_a):
    run_on_virtual_time(ticks_on_schedule(speech_a))


async def ticks_on_schedule(speech_a: list[bytes]) -> None:
    loop = asyncio.get_running_loop()
    mixer = Mixer()
    for frame in speech_a[:10]:
        mixer.push("a", frame)
    received: list[bytes] = []
    emitted_at: list[float] = []

    def on_frame(frame: bytes) -> None:
        received.append(frame)
        emitted_at.append(loop.time())

    clock = MixerClock(mixer, on_frame, clock=loop.time)
    await clock.run(max_ticks=25)
    assert len(received) == clock.ticks == mixer.stats.ticks == 25
    assert received[:10] == speech_a[:10] and set(received[10:]) == {SILENT_FRAME}
    # Speech goes out at its deadline, every 20 ms; the silence after it in batches, never early.
    assert emitted_at[:10] == pytest.approx([k * 0.02 for k in range(10)])
    assert all(at >= k * 0.02 - 1e-9 for k, at in enumerate(emitted_at))


async def test_mixer_clock_start_stop_with_async_callback():
    got = asyncio.Queue()

    async def on_frame(frame: bytes) -> None:
        await got.put(frame)

    clock = MixerClock(Mixer(), on_frame)
    clock.start()
    for _ in range(5):
        assert await asyncio.wait_for(got.get(), timeout=5) == SILENT_FRAME
    await asyncio.wait_for(clock.stop(), timeout=5)
    ticks = clock.ticks
    await asyncio.sleep(0.1)
    assert clock.ticks == ticks >= 5


async def test_mixer_clock_skips_a_long_stall_instead_of_bursting():
    now = [100.0]
    frames: list[bytes] = []

    def on_frame(frame: bytes) -> None:
        frames.append(frame)
        # Each tick takes exactly one interval of (simulated) time; the 5th stalls for a second.
        now[0] += 1.0 if len(frames) == 5 else 0.02

    clock = MixerClock(Mixer(), on_frame, clock=lambda: now[0])
    await asyncio.wait_for(clock.run(max_ticks=20), timeout=5)
    assert len(frames) == 20
    assert clock.skipped == 49  # 1 s late = 50 intervals, one of which is the tick itself
