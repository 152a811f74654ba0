import numpy as np
import pytest

from bot.palabra.emulator.vad import EnergyVad, Utterance
from tests.fakes.audio import bursts

RATE = 16000


def feed_all(vad, pcm, step):
    samples = np.frombuffer(pcm, dtype="<i2")
    found = []
    for i in range(0, len(samples), step):
        found += vad.feed(samples[i : i + step])
    return found


@pytest.mark.parametrize("step", [1000, 5120, 333])
def test_utterances_are_found_where_the_bursts_are(step):
    pcm = bursts(RATE, [("silence", 0.5), ("tone", 1.0), ("silence", 1.0), ("noise", 0.6), ("silence", 0.9)])
    found = feed_all(EnergyVad(RATE, confirm_silence_s=0.7), pcm, step)
    assert len(found) == 2
    assert found[0].start == pytest.approx(0.5, abs=0.021) and found[0].end == pytest.approx(1.5, abs=0.021)
    assert found[1].start == pytest.approx(2.5, abs=0.021) and found[1].end == pytest.approx(3.1, abs=0.021)


def test_short_gaps_do_not_split_an_utterance():
    pcm = bursts(RATE, [("tone", 0.5), ("silence", 0.3), ("tone", 0.5), ("silence", 0.8)])
    found = feed_all(EnergyVad(RATE, confirm_silence_s=0.7), pcm, 4000)
    assert found == [Utterance(0.0, pytest.approx(1.3, abs=0.021))]


def test_confirmation_needs_the_trailing_silence_and_flush_ends_it():
    vad = EnergyVad(RATE, confirm_silence_s=0.7)
    assert feed_all(vad, bursts(RATE, [("tone", 1.0), ("silence", 0.5)]), 1600) == []
    assert vad.speech_start == 0.0
    tail = vad.flush()
    assert tail is not None and tail.end == pytest.approx(1.0, abs=0.021)
    assert vad.flush() is None


def test_reset_forgets_the_utterance_in_progress_and_quiet_audio_is_silence():
    vad = EnergyVad(RATE, confirm_silence_s=0.3)
    feed_all(vad, bursts(RATE, [("tone", 0.5)]), 1600)
    vad.reset()
    assert feed_all(vad, bursts(RATE, [("silence", 1.0)]), 1600) == []
    quiet = bursts(RATE, [("noise", 1.0), ("silence", 0.5)], amplitude=0.001)  # about -60 dBFS
    assert feed_all(vad, quiet, 1600) == []
    assert vad.now == pytest.approx(3.0)
