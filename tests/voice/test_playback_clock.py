"""The shared playback clock's outlets: nothing encoded or sent for silence after a five-frame tail, and
speech after a pause decoded on its RTP timestamps lines up with what was fed (no clipped onset)."""

import threading

import numpy as np

from bot.audio import opus
from bot.audio.frames import FRAME_BYTES, FRAME_SAMPLES
from bot.voice.playback import TranslationSource
from bot.voice.playback_clock import OPUS_SILENCE, SILENCE_TAIL_FRAMES, Outlet, PlaybackClock
from tests.fakes.audio import SPEECH_B, decode, from_pcm, xcorr


class RecordingSink:
    """Stands in for a VoiceClient: keeps (rtp timestamp, packet) like discord.py's send_audio_packet,
    which advances its timestamp one frame per packet."""

    def __init__(self) -> None:
        self.timestamp = 1000
        self.connected = True
        self.packets: list[tuple[int, bytes]] = []

    def is_connected(self) -> bool:
        return self.connected

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        assert not encode
        self.packets.append((self.timestamp, data))
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF


def speech_24k(seconds: float) -> bytes:
    return decode(SPEECH_B, rate=24000, channels=1)[: int(24000 * seconds) * 2]


def play(outlet: Outlet, source: TranslationSource, pcm: bytes) -> None:
    source.feed(pcm)
    source.end_utterance()
    while source.queued_seconds:
        outlet.tick()


def timeline(sink: RecordingSink, start_ts: int) -> np.ndarray:
    """What a receiver plays: each packet decoded at its RTP timestamp, silence between (left channel)."""
    decoder = opus.Decoder()
    end = sink.packets[-1][0] + FRAME_SAMPLES - start_ts
    out = np.zeros(end, dtype=np.float64)
    for ts, packet in sink.packets:
        pcm = from_pcm(decoder.decode(packet), 2)[:, 0]
        out[ts - start_ts : ts - start_ts + len(pcm)] = pcm
    return out


def test_silence_is_neither_encoded_nor_sent_after_a_five_frame_tail():
    sink, source = RecordingSink(), TranslationSource()
    outlet = Outlet(sink, source)
    for _ in range(50):
        outlet.tick()
    assert sink.packets == []  # an idle speaker sends nothing from the start

    play(outlet, source, speech_24k(1.0))
    speech_packets = len(sink.packets)
    assert outlet.stats.encoded == speech_packets >= 50
    for _ in range(200):
        outlet.tick()
    tail = [packet for _ts, packet in sink.packets[speech_packets:]]
    assert tail == [OPUS_SILENCE] * SILENCE_TAIL_FRAMES
    assert outlet.stats.encoded == speech_packets  # 4 s of silence: not one frame encoded
    assert outlet.stats.idle_ticks == 50 + 200 - SILENCE_TAIL_FRAMES


def test_speech_after_a_pause_keeps_its_onset_and_its_place_on_the_rtp_clock():
    sink, source = RecordingSink(), TranslationSource()
    outlet = Outlet(sink, source)
    first, second = speech_24k(1.0), speech_24k(2.0)[24000 * 2 :]  # two different stretches of speech
    play(outlet, source, first)
    pause_ticks = 40
    for _ in range(pause_ticks):
        outlet.tick()
    resume_index = len(sink.packets)
    resume_ts = sink.packets[-1][0] + FRAME_SAMPLES + (pause_ticks - SILENCE_TAIL_FRAMES) * FRAME_SAMPLES
    play(outlet, source, second)
    assert sink.packets[resume_index][0] == resume_ts  # the RTP clock ran through the pause

    heard = timeline(sink, sink.packets[0][0])
    onset = resume_ts - sink.packets[0][0]
    reference = from_pcm(decode(SPEECH_B, rate=48000, channels=2), 2)[48000 : 48000 + 48000, 0]
    # The first syllable: the first 100 ms after the resume must be there, undelayed.
    window = 4800
    heard_onset = heard[onset : onset + window + 2000]
    corr = xcorr(reference[:window], heard_onset, max_lag=2000)
    assert corr.peak > 0.8, f"onset correlation {corr.peak:.3f}"
    assert 0 <= corr.lag < 700  # resampler + codec delay only (< 15 ms), no lost frame at the start
    # And the whole second utterance is intact.
    whole = xcorr(reference, heard[onset : onset + len(reference) + 2000], max_lag=2000)
    assert whole.peak > 0.9 and abs(whole.lag - corr.lag) < 48


def test_a_disconnected_sink_gets_nothing_and_a_reconnect_is_reported():
    sink, source = RecordingSink(), TranslationSource()
    reconnects = []
    outlet = Outlet(sink, source, on_reconnected=lambda: reconnects.append(1))
    sink.connected = False
    source.feed(speech_24k(0.5))
    for _ in range(5):
        outlet.tick()
    assert sink.packets == [] and outlet.stats.not_connected == 5
    sink.connected = True
    outlet.tick()
    assert reconnects == [1] and len(sink.packets) == 1


def test_the_clock_threads_tick_attached_outlets_until_detached():
    sink, source = RecordingSink(), TranslationSource()
    sent = threading.Event()

    class Counting(RecordingSink):
        def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
            super().send_audio_packet(data, encode=encode)
            if len(self.packets) >= 10:
                sent.set()

    sink = Counting()
    clock = PlaybackClock(senders=2)
    try:
        source.feed(speech_24k(2.0))
        outlet = clock.attach(Outlet(sink, source))
        assert sent.wait(timeout=10)
        clock.detach(outlet)
        assert outlet not in clock.outlets
        assert all(len(packet) > 3 for _ts, packet in sink.packets[:10])  # encoded speech, not silence
        assert all(len(packet) < FRAME_BYTES for _ts, packet in sink.packets)
    finally:
        clock.stop()


def test_an_outlet_whose_connection_never_comes_back_is_dropped():
    sink, source = RecordingSink(), TranslationSource()
    outlet = Outlet(sink, source)
    sink.connected = False
    for _ in range(3001):
        outlet.tick()
    assert outlet.detached


def test_audio_queued_while_the_connection_is_down_plays_once_it_is_back():
    """The speaker's voice connection drops between talk spurts (a resume, a reconnect); translation
    arrives meanwhile and wakes the sleeping sender, which finds the connection down. The sender must keep
    ticking that outlet until the connection is back, not fall asleep again with the audio queued (later
    chunks find the queue non-empty and wake nobody)."""
    sent = threading.Event()

    class Counting(RecordingSink):
        def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
            super().send_audio_packet(data, encode=encode)
            sent.set()

    sink, source = Counting(), TranslationSource()
    clock = PlaybackClock(senders=1)
    try:
        outlet = clock.attach(Outlet(sink, source))
        sink.connected = False
        source.feed(speech_24k(1.0))  # wakes the sender; it finds the connection down
        pause = threading.Event()
        for _ in range(500):  # at most 5 s
            if outlet.stats.not_connected or pause.wait(0.01):
                break
        assert outlet.stats.not_connected
        source.feed(speech_24k(1.0))  # the queue is not empty: no wake-up from this one
        sink.connected = True
        assert sent.wait(timeout=5), "the queued translation never played after the reconnect"
        assert all(len(packet) > 3 for _ts, packet in sink.packets[:5])  # speech, not silence
    finally:
        clock.stop()


def test_translation_waits_while_frames_would_go_out_unencrypted_and_plays_from_its_first_frame():
    """Connected, but our DAVE group not ready yet (a reconnect, before the welcome): discord.py would
    send plain Opus, which DAVE receivers drop. The outlet holds the audio instead, with the RTP clock
    running on, and plays it from its first frame once the group is ready."""
    ready = [False]
    sink, source = RecordingSink(), TranslationSource()
    outlet = Outlet(sink, source, media_ready=lambda: ready[0])
    source.feed(speech_24k(2.0)[24000 * 2 :])  # the second second of the fixture: speech throughout
    source.end_utterance()
    queued = source.queued_seconds
    for _ in range(10):
        outlet.tick()
    assert sink.packets == [] and source.queued_seconds == queued and outlet.stats.held_for_e2ee == 10
    assert not outlet.idle  # the sender keeps ticking it: nothing would wake it again
    ready[0] = True
    while source.queued_seconds:
        outlet.tick()
    first_ts = sink.packets[0][0]
    assert first_ts == 1000 + 10 * FRAME_SAMPLES  # the wait shows as a pause on the RTP clock
    heard = timeline(sink, first_ts)
    reference = from_pcm(decode(SPEECH_B, rate=48000, channels=2), 2)[48000:96000, 0]  # the same second
    played = xcorr(reference, heard[: len(reference) + 2000], max_lag=2000)  # all of it, from its start
    assert played.peak > 0.9 and 0 <= played.lag < 700, played


def test_a_talk_spurt_whose_first_chunk_is_tiny_waits_a_moment_for_more_instead_of_stuttering():
    """Palabra may open a translation with a chunk of a few ms. Starting on 20 ms would leave a hole as
    soon as the next chunk is a moment late; the spurt waits for 60 ms of audio (at most 3 ticks), and
    a whole short utterance, or a first chunk that is long enough, starts at once."""
    sink, source = RecordingSink(), TranslationSource()
    outlet = Outlet(sink, source)
    speech = speech_24k(2.0)[24000 * 2 :]
    frame_24k = 480 * 2  # 20 ms at 24 kHz
    source.feed(speech[: 5 * frame_24k // 2])  # a tiny first chunk: 50 ms, one frame past the resampler
    assert 0 < source.queued_seconds < 0.06
    outlet.tick()
    assert sink.packets == [] and not outlet.idle  # waiting, and the sender keeps ticking it
    source.feed(speech[5 * frame_24k // 2 : 6 * frame_24k])  # the next chunk, a tick later
    outlet.tick()
    assert len(sink.packets) == 1 and sink.packets[0][0] == 1000 + FRAME_SAMPLES  # one tick of wait on the clock
    for _ in range(3):
        outlet.tick()
    assert len(sink.packets) == 4  # then every frame in turn, no hole

    # Nothing more comes: a lone frame starts after 3 ticks at most.
    late_sink, late_source = RecordingSink(), TranslationSource()
    late = Outlet(late_sink, late_source)
    late_source.feed(speech[: 5 * frame_24k // 2])
    for _ in range(3):
        late.tick()
    assert late_sink.packets == []
    late.tick()
    assert len(late_sink.packets) == 1

    # A whole utterance shorter than the wait, or a long first chunk: at once.
    for feed in (speech[:frame_24k], speech[: 10 * frame_24k]):
        quick_sink, quick_source = RecordingSink(), TranslationSource()
        quick = Outlet(quick_sink, quick_source)
        quick_source.feed(feed)
        if len(feed) == frame_24k:
            quick_source.end_utterance()
        quick.tick()
        assert len(quick_sink.packets) == 1
