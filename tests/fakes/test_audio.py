"""The gap-tolerant "was this speech heard" measure is itself tested: it must pass speech with jitter
holds in it and fail silence, noise, a lost half and speech heard out of order."""

import numpy as np

from tests.fakes.audio import SPEECH_A, SPEECH_B, fixture_signal, found_in, pieces_heard, xcorr

RATE = 16000


def _speech() -> np.ndarray:
    return fixture_signal(SPEECH_A, RATE)[: 3 * RATE]


def _with_gaps(signal: np.ndarray, every_s: float, gap_s: float = 0.02) -> np.ndarray:
    step, parts = int(every_s * RATE), [np.zeros(5000)]
    for start in range(0, len(signal), step):
        parts += [signal[start : start + step], np.zeros(int(gap_s * RATE))]
    return np.concatenate([*parts, np.zeros(3000)])


def test_speech_with_jitter_holds_in_it_is_heard_where_one_correlation_says_it_was_not():
    speech = _speech()
    heard = _with_gaps(speech, every_s=0.7)
    assert xcorr(speech, heard).peak < 0.6  # one alignment for everything fails it ...
    assert pieces_heard(speech, heard, RATE) >= 0.9  # ... the pieces are all there


def test_silence_noise_a_lost_half_and_the_wrong_order_are_not_heard():
    speech = _speech()
    heard = _with_gaps(speech, every_s=0.7)
    assert pieces_heard(speech, np.zeros(len(heard)), RATE) == 0.0
    assert pieces_heard(speech, np.random.default_rng(1).normal(0, 0.1, len(heard)), RATE) == 0.0
    half_lost = heard.copy()
    half_lost[len(heard) // 2 :] = 0
    assert 0.3 <= pieces_heard(speech, half_lost, RATE) <= 0.6
    swapped = np.concatenate([heard[len(heard) // 2 :], heard[: len(heard) // 2]])
    assert pieces_heard(speech, swapped, RATE) <= 0.6


def test_found_in_passes_a_delayed_copy_with_holds_and_fails_other_speech():
    speech = _speech()
    heard = _with_gaps(speech, every_s=0.5)[8000:40000]  # 2 s from the middle, holds in it
    assert found_in(speech, heard, RATE) >= 0.95
    other = fixture_signal(SPEECH_B, RATE)[: 2 * RATE]
    assert found_in(speech, other, RATE) < 0.5
    assert found_in(speech, np.random.default_rng(2).normal(0, 0.1, 2 * RATE), RATE) < 0.2
    assert found_in(speech, np.zeros(2 * RATE), RATE) == 0.0
