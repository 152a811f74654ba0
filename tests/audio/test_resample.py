import numpy as np
import pytest

from bot.audio.resample import Resampler, discord_to_session, measure_latency_ms, palabra_to_discord
from tests.fakes import audio

CONVERSIONS = [
    pytest.param(48000, 2, 16000, 1, id="discord->16k-mono"),
    pytest.param(48000, 2, 24000, 1, id="discord->24k-mono"),
    pytest.param(24000, 1, 48000, 2, id="palabra->discord"),
]


def frames_of(pcm: bytes, rate: int, channels: int, ms: int = 20) -> list[bytes]:
    step = rate * ms // 1000 * 2 * channels
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def multitone(seconds: float, rate: int) -> np.ndarray:
    """A band-limited test signal computed analytically at any rate (components below 7 kHz)."""
    return sum(
        audio.sine(f, seconds, rate, amplitude=0.12, phase=p) for f, p in [(220, 0), (1330, 1), (3170, 2), (6530, 3)]
    )


@pytest.mark.parametrize(("in_rate", "in_ch", "out_rate", "out_ch"), CONVERSIONS)
def test_chunked_equals_one_shot_and_has_no_clicks(in_rate, in_ch, out_rate, out_ch):
    pcm = audio.to_pcm(audio.sine(440, 1.0, in_rate, amplitude=0.8), in_ch)
    one_shot = Resampler(in_rate, in_ch, out_rate, out_ch)
    whole = audio.mono(one_shot.process(pcm) + one_shot.flush(), out_ch)

    chunked = Resampler(in_rate, in_ch, out_rate, out_ch)
    pieces = [chunked.process(frame) for frame in frames_of(pcm, in_rate, in_ch)]
    streamed = audio.mono(b"".join(pieces) + chunked.flush(), out_ch)

    assert len(streamed) == len(whole) == out_rate
    assert np.max(np.abs(streamed - whole)) <= 2 / 32768  # rounding only
    # A 440 Hz sine at 0.8 moves at most 2*pi*440*0.8/rate per sample; a click would jump far more.
    steady = streamed[out_rate // 50 : -out_rate // 50]  # the filter's ramp-in/out at the very ends
    assert audio.max_jump(steady) <= 1.05 * 2 * np.pi * 440 * 0.8 / out_rate


def test_odd_sized_writes_carry_partial_samples():
    pcm = audio.to_pcm(audio.sine(440, 0.5, 48000), channels=2)
    reference = Resampler(48000, 2, 16000, 1)
    expected = reference.process(pcm) + reference.flush()
    odd = Resampler(48000, 2, 16000, 1)
    out = b"".join(odd.process(pcm[i : i + 1001]) for i in range(0, len(pcm), 1001)) + odd.flush()
    assert np.max(np.abs(audio.from_pcm(out) - audio.from_pcm(expected))) <= 2 / 32768


@pytest.mark.parametrize(("in_rate", "in_ch", "out_rate", "out_ch"), CONVERSIONS)
def test_conversion_preserves_frequency_level_and_timing(in_rate, in_ch, out_rate, out_ch):
    tone = audio.sine(997, 1.0, in_rate, amplitude=0.5)
    resampler = Resampler(in_rate, in_ch, out_rate, out_ch)
    out = b"".join(resampler.process(f) for f in frames_of(audio.to_pcm(tone, in_ch), in_rate, in_ch))
    out += resampler.flush()
    assert len(out) == out_rate * 2 * out_ch
    if out_ch == 2:
        channels = audio.from_pcm(out, 2)
        assert np.array_equal(channels[:, 0], channels[:, 1])
    result = audio.mono(out, out_ch)
    assert audio.peak_frequency(result, out_rate) == pytest.approx(997, abs=2)
    assert audio.rms(result[1000:-1000]) == pytest.approx(audio.rms(tone), rel=0.01)

    # Timing: the output lines up with the same signal computed directly at the output rate.
    wide = multitone(1.0, in_rate)
    converter = Resampler(in_rate, in_ch, out_rate, out_ch)
    converted = audio.mono(converter.process(audio.to_pcm(wide, in_ch)) + converter.flush(), out_ch)
    match = audio.xcorr(multitone(1.0, out_rate), converted, max_lag=out_rate // 10)
    assert match.lag == 0 and match.peak > 0.99


def test_stereo_input_is_averaged():
    left = audio.sine(500, 0.5, 48000, amplitude=0.4)
    stereo = audio.to_pcm(np.stack([left, np.zeros_like(left)], axis=1))
    resampler = discord_to_session(16000)
    out = audio.from_pcm(resampler.process(stereo) + resampler.flush())
    assert audio.rms(out[500:-500]) == pytest.approx(audio.rms(left) / 2, rel=0.01)


def test_same_rate_is_channel_conversion_only():
    mono = audio.to_pcm(audio.noise(0.1, 48000))
    resampler = Resampler(48000, 1, 48000, 2)
    out = resampler.process(mono) + resampler.flush()
    assert np.array_equal(audio.from_pcm(out, 2)[:, 0], audio.from_pcm(mono))
    assert resampler.pending_ms == 0


def test_latency_is_small_and_matches_what_is_held_back():
    resampler = palabra_to_discord()
    pcm = audio.to_pcm(audio.sine(440, 1.0, 24000))
    produced = 0
    for index, frame in enumerate(frames_of(pcm, 24000, 1), start=1):
        produced += len(resampler.process(frame)) // 4
        held_ms = (index * 960 - produced) / 48.0  # 20 ms = 960 samples at 48 kHz
        assert resampler.pending_ms == pytest.approx(held_ms, abs=0.05)
    figures = measure_latency_ms(48000, 2, 16000, 1)
    assert 0 < figures["mean"] < 40 and figures["max"] < 60


def test_misuse_is_reported():
    with pytest.raises(ValueError, match="quality"):
        Resampler(48000, 2, 16000, 1, quality="best")
    resampler = discord_to_session()
    resampler.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        resampler.process(bytes(3840))
    assert resampler.flush() == b""
