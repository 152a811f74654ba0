"""The ingress FIR decimator: in-band speech passes at level and time-aligned, what would alias is
removed, any chunking gives the same output, silence takes the shortcut without changing the output."""

import numpy as np
import pytest

from bot.audio.decimate import Decimator
from bot.audio.resample import Resampler, discord_to_session
from tests.fakes import audio


def stereo(signal):
    return audio.to_pcm(np.repeat(signal[:, None], 2, axis=1))


def convert(pcm, chunk=3840, rate=16000):
    decimator = Decimator(48000, 2, rate)
    out = b"".join(decimator.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk))
    return audio.from_pcm(out + decimator.flush())


def test_in_band_tone_keeps_its_level_and_timing():
    out = convert(stereo(audio.sine(997, 1.0, 48000, amplitude=0.5)))
    reference = audio.sine(997, 1.0, 16000, amplitude=0.5)
    delay = Decimator(48000, 2, 16000).delay // 3  # 18 samples at 16 kHz: 1.1 ms
    assert len(out) == len(reference)  # same length as soxr's: nothing held back, nothing added
    assert audio.rms(out[200:-200]) == pytest.approx(audio.rms(reference), rel=0.01)
    match = audio.xcorr(reference, out, max_lag=400)
    assert match.lag == delay and match.peak > 0.999


@pytest.mark.parametrize("freq", [9000, 12000, 20000])
def test_what_would_alias_is_attenuated_by_60_db(freq):
    out = convert(stereo(audio.sine(freq, 0.5, 48000, amplitude=0.5)))
    assert audio.dbfs(audio.rms(out[300:-300])) - audio.dbfs(audio.rms(audio.sine(freq, 0.5, 48000, 0.5))) < -60


def test_any_chunking_gives_the_same_output():
    pcm = stereo(audio.noise(0.7, 48000))
    whole = convert(pcm, chunk=len(pcm))
    assert np.array_equal(convert(pcm, chunk=3840), whole)
    assert np.array_equal(convert(pcm, chunk=1238), whole)  # odd sizes: partial sample frames carried


def test_silence_shortcut_matches_the_filtered_output():
    tone = stereo(audio.sine(440, 0.1, 48000))
    pcm = tone + bytes(3840 * 30) + tone
    frames = [pcm[i : i + 3840] for i in range(0, len(pcm), 3840)]
    decimator = Decimator(48000, 2, 16000)
    fast = b"".join(decimator.process(f) for f in frames) + decimator.flush()
    assert np.array_equal(audio.from_pcm(fast), convert(pcm, chunk=len(pcm)))


def test_nothing_is_held_back_and_soxr_remains_for_other_rates():
    decimator = discord_to_session(16000)
    assert isinstance(decimator, Decimator) and decimator.pending_ms == 0 and decimator.delay_ms < 1.5
    first = decimator.process(stereo(audio.sine(440, 0.02, 48000)))
    assert len(first) // 2 == 320  # a 20 ms frame comes out whole at once
    assert isinstance(discord_to_session(44100), Resampler)
    assert isinstance(discord_to_session(16000, quality="HQ"), Resampler)


@pytest.mark.parametrize("settled", [True, False])
def test_process_silence_is_process_of_that_many_silent_frames(settled):
    """The idle clock's batches skip building and scanning the zeros; the output and what follows
    are the same, whether the filter still rings out speech (not settled) or not."""
    tone = stereo(audio.sine(440, 0.1, 48000))
    after = stereo(audio.sine(660, 0.1, 48000))
    outputs = []
    for shortcut in (False, True):
        decimator = Decimator(48000, 2, 16000)
        out = decimator.process(tone) + (decimator.process(bytes(3840 * 4)) if settled else b"")
        out += decimator.process_silence(8) if shortcut else decimator.process(bytes(3840 * 8))
        outputs.append(out + decimator.process(after))
    assert outputs[0] == outputs[1]
    resampler = Resampler(48000, 2, 16000, 1)
    assert len(resampler.process_silence(8)) == len(Resampler(48000, 2, 16000, 1).process(bytes(3840 * 8)))
