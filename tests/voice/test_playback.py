"""The queue-backed playback source: never ends, resamples translation, floor audio ducks smoothly."""

import numpy as np
import pytest

from bot.audio.frames import FRAME_BYTES
from bot.voice.playback import OPUS_SETTINGS, GainRamp, TranslationSource
from tests.fakes.audio import from_pcm, max_jump, mono, peak_frequency, rms, sine, to_pcm, xcorr


def read_frames(source, count):
    return [source.read() for _ in range(count)]


def stereo_pcm(signal):
    return to_pcm(np.repeat(signal[:, None], 2, axis=1).reshape(-1))


def test_empty_source_plays_silence_forever():
    source = TranslationSource()
    frames = read_frames(source, 100)
    assert all(f == bytes(FRAME_BYTES) for f in frames)
    assert not source.is_opus()


def test_translation_is_resampled_to_48k_stereo():
    tone = sine(440, 1.0, 24000, amplitude=0.5)
    source = TranslationSource()
    pcm = to_pcm(tone)
    for start in range(0, len(pcm), 1234):  # uneven chunks, as they come off the websocket
        source.feed(pcm[start : start + 1234])
    source.end_utterance()
    assert abs(source.queued_seconds - 1.0) <= 0.04
    out = b"".join(read_frames(source, 60))
    assert all(len(f) == FRAME_BYTES for f in read_frames(source, 5))
    left = from_pcm(out, 2)[:, 0]
    assert abs(peak_frequency(left, 48000) - 440) < 5
    reference = np.repeat(tone, 2)[: len(left)]  # 24k -> 48k by sample repetition, good enough to align
    assert xcorr(reference, left, max_lag=2000).peak > 0.95


def test_floor_is_ducked_under_translation_and_ramps_smoothly():
    floor = stereo_pcm(sine(200, 3.0, 48000, amplitude=0.5))
    floor_frames = [floor[i : i + FRAME_BYTES] for i in range(0, len(floor), FRAME_BYTES)]
    source = TranslationSource(
        floor_base_volume=0.6, floor_ducked_volume=0.15, attack_s=0.05, release_s=0.2, hold_s=0.1
    )
    out = []
    for index, frame in enumerate(floor_frames):
        if index == 50:  # 1 s of translation (digital silence, so the output is just the floor)
            source.feed(bytes(24000 * 2))
            source.end_utterance()
        source.feed_floor(frame)
        out.append(source.read())
    signal = mono(b"".join(out), 2)
    level = rms(sine(200, 1.0, 48000, amplitude=0.5))

    def section(start_s, end_s):
        return rms(signal[int(start_s * 48000) : int(end_s * 48000)]) / level

    assert section(0.2, 0.9) == pytest.approx(0.6, abs=0.02)  # base volume
    assert section(1.2, 1.9) == pytest.approx(0.15, abs=0.02)  # ducked
    assert section(2.6, 3.0) == pytest.approx(0.6, abs=0.02)  # released
    # no clicks: the largest sample step stays that of a 200 Hz tone at full base volume
    assert max_jump(signal) <= max_jump(sine(200, 0.1, 48000, amplitude=0.5)) * 0.6 + 1e-3


def test_gain_ramp_is_linear_and_bounded():
    ramp = GainRamp(1.0, rate=1000)
    out = ramp.apply(np.full(200, 1000, dtype=np.int16), 0.0, 0.05)  # 100 stereo frames, 50 ms ramp
    gains = out[:, 0] / 1000
    assert gains[0] == pytest.approx(0.98) and gains[49] == pytest.approx(0.0) and gains[-1] == 0.0
    assert np.all(np.diff(gains) <= 0)


def test_queue_is_bounded_and_overflow_counted():
    source = TranslationSource(max_queue_s=0.2)
    source.feed(bytes(24000 * 2))  # 1 s
    assert source.queued_seconds <= 0.2 and source.dropped_frames > 0


def test_bad_floor_frame_and_volume_are_explained():
    with pytest.raises(ValueError, match="3840 bytes"):
        TranslationSource().feed_floor(b"123")
    with pytest.raises(ValueError, match="floor_base_volume"):
        TranslationSource(floor_base_volume=2)


def test_opus_settings_are_valid_for_discord_py():
    import discord.opus

    from bot.voice.playback import ensure_discord_opus

    ensure_discord_opus()
    encoder = discord.opus.Encoder(
        application=OPUS_SETTINGS["application"],
        bitrate=OPUS_SETTINGS["bitrate"],
        fec=OPUS_SETTINGS["fec"],
        expected_packet_loss=OPUS_SETTINGS["expected_packet_loss"],
        signal_type=OPUS_SETTINGS["signal_type"],
    )
    assert encoder.encode(bytes(FRAME_BYTES), 960)
