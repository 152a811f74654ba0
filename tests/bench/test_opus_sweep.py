"""The Opus sweep measures the playback encoder: speech comes back correlated, and a higher bitrate
costs more bytes per packet."""

from __future__ import annotations

from bot.audio.frames import FrameAssembler
from bot.bench.micro import speech_pcm
from bot.bench.opus_sweep import measure


def test_the_sweep_measures_quality_cost_and_size_of_the_playback_encoder():
    frames = FrameAssembler().feed(speech_pcm(100))
    low, high = measure(frames, complexity=1, bitrate=32, repeat=1), measure(frames, complexity=1, bitrate=96, repeat=1)
    assert low["correlation"] > 0.95 and high["correlation"] >= low["correlation"] - 0.001
    assert high["bytes_per_packet"] > 1.5 * low["bytes_per_packet"]
    assert low["encode_us"] > 0 and 0 <= low["delay_samples"] < 960
