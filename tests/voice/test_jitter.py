"""Jitter buffer + decode: ordering, wraparound, loss -> FEC/PLC, gaps -> silence, speaking events."""

import numpy as np
import pytest

from bot.audio import opus
from bot.audio.frames import SILENT_FRAME
from bot.voice.jitter import SpeakingChanged, UserFrame, UserStream
from bot.voice.receive import VoicePacket
from tests.fakes.audio import from_pcm, rms, sine, to_pcm

USER = 42


@pytest.fixture(scope="module")
def packets():
    signal = sine(330, 1.2, 48000, amplitude=0.4)
    pcm = to_pcm(np.repeat(signal[:, None], 2, axis=1).reshape(-1))
    encoder = opus.Encoder(application="voip", fec=True, expected_packet_loss=0.2)
    return [encoder.encode(pcm[i : i + 3840]) for i in range(0, 60 * 3840, 3840)]


def reference(packets):
    decoder = opus.Decoder()
    return [decoder.decode(p) for p in packets]


def vp(index, payload, seq0=100, ts0=5000, arrival=None, ts_offset=0):
    return VoicePacket(
        USER,
        7,
        (seq0 + index) & 0xFFFF,
        (ts0 + 960 * (index + ts_offset)) & 0xFFFFFFFF,
        payload,
        index * 0.02 if arrival is None else arrival,
    )


def frames(outputs):
    return [o for o in outputs if isinstance(o, UserFrame)]


def feed(stream, items):
    out = []
    for item in items:
        out += stream.push(item)
    return out


def test_in_order_matches_a_plain_decode(packets):
    out = feed(UserStream(USER), [vp(i, p) for i, p in enumerate(packets)])
    assert isinstance(out[0], SpeakingChanged) and out[0].speaking
    got = frames(out)
    assert [f.pcm for f in got] == reference(packets)
    assert [f.tick for f in got] == list(range(len(packets)))
    assert {f.kind for f in got} == {"audio"}


def test_reordering_within_depth_is_undone(packets):
    order = list(range(len(packets)))
    # (the first packet of a talk spurt anchors the order, so swaps start after it)
    for i in range(2, len(order) - 1, 4):
        order[i], order[i + 1] = order[i + 1], order[i]
    stream = UserStream(USER)
    got = frames(feed(stream, [vp(i, packets[i], arrival=n * 0.02) for n, i in enumerate(order)]))
    assert [f.pcm for f in got] == reference(packets)
    assert stream.stats.lost == stream.stats.late == 0


def test_wraparound_of_sequence_and_timestamp(packets):
    items = [vp(i, p, seq0=65530, ts0=2**32 - 960 * 3) for i, p in enumerate(packets[:20])]
    got = frames(feed(UserStream(USER), items))
    assert [f.tick for f in got] == list(range(20))
    assert [f.sequence for f in got][5:8] == [65535, 65536, 65537]


def test_single_loss_is_recovered_with_fec(packets):
    stream = UserStream(USER)
    got = frames(feed(stream, [vp(i, p) for i, p in enumerate(packets) if i != 20]))
    assert len(got) == len(packets)
    assert got[20].kind == "fec" and got[20].tick == 20
    assert stream.stats.lost == 1 and stream.stats.fec_recovered == 1
    expected = from_pcm(reference(packets)[20], 2)
    assert rms(from_pcm(got[20].pcm, 2) - expected) < 0.5 * rms(expected)


def test_burst_loss_uses_plc_then_fec(packets):
    stream = UserStream(USER)
    got = frames(feed(stream, [vp(i, p) for i, p in enumerate(packets) if i not in (30, 31, 32)]))
    assert [f.kind for f in got[30:34]] == ["plc", "plc", "fec", "audio"]
    assert stream.stats.lost == 3 and stream.stats.plc_frames == 2
    # concealment continues the tone (fading), it is not silence
    assert rms(from_pcm(got[30].pcm, 2)) > 0.1
    assert all(rms(from_pcm(f.pcm, 2)) > 0.01 for f in got[30:33])


def test_missing_packet_is_given_up_after_max_wait(packets):
    stream = UserStream(USER, max_wait=0.06)
    out = feed(stream, [vp(0, packets[0]), vp(2, packets[2], arrival=0.04)])
    assert len(frames(out)) == 1  # waiting for seq 1
    assert frames(stream.poll(0.07)) == []
    late = frames(stream.poll(0.11))
    assert [f.kind for f in late] == ["fec", "audio"]


def test_dtx_gap_inside_a_spurt_becomes_silence(packets):
    items = [vp(i, packets[i]) for i in range(5)] + [
        vp(i, packets[i], ts_offset=4, arrival=(i + 4) * 0.02) for i in range(5, 10)
    ]
    got = frames(feed(UserStream(USER), items))
    assert [f.kind for f in got[5:9]] == ["silence"] * 4
    assert all(f.pcm == SILENT_FRAME for f in got[5:9])
    assert [f.tick for f in got] == list(range(14))


def test_silence_is_paced_by_the_wall_clock_then_speaking_stops(packets):
    stream = UserStream(USER, max_wait=0.04, speaking_timeout=0.3)
    feed(stream, [vp(i, packets[i]) for i in range(5)])  # slots 0..4, last arrives at 0.08
    filled = frames(stream.poll(0.08 + 0.04 + 0.1))
    assert [f.kind for f in filled] == ["silence"] * 5 and filled[0].tick == 5
    stopped = stream.poll(0.5)
    assert stopped[-1] == SpeakingChanged(USER, False)
    resumed = stream.push(vp(60, packets[10], arrival=2.0))
    assert resumed[0] == SpeakingChanged(USER, True)
    assert frames(resumed)[0].tick == 60 and frames(resumed)[0].kind == "audio"


def test_late_packets_are_dropped(packets):
    stream = UserStream(USER)
    feed(stream, [vp(i, packets[i]) for i in range(4)])
    assert frames(stream.push(vp(1, packets[1], arrival=0.1))) == []
    assert stream.stats.late == 1


def test_sender_clock_that_stops_in_pauses_is_followed_not_dropped(packets):
    """discord.py-style senders advance the RTP timestamp per packet only: after a pause that we
    filled with silence, their next packets are placed after the fill instead of being dropped."""
    stream = UserStream(USER, max_wait=0.04, speaking_timeout=0.3)
    feed(stream, [vp(i, packets[i]) for i in range(3)])
    filled = frames(stream.poll(0.2))  # slots 3.. filled with silence; still "speaking"
    resumed = frames(feed(stream, [vp(i, packets[i], arrival=0.2 + i * 0.02) for i in range(3, 8)]))
    assert [f.kind for f in resumed] == ["audio"] * 5
    assert resumed[0].tick == filled[-1].tick + 1
    assert [f.pcm for f in resumed] == reference(packets[:8])[3:]
    assert stream.stats.late == 0
    stream.poll(1.0)
    again = frames(stream.push(vp(8, packets[8], arrival=2.0)))  # a new spurt, same sender clock
    assert again[0].tick > resumed[-1].tick + 50  # ticks keep moving forward with the pause


def test_corrupted_packet_is_concealed_not_fatal(packets):
    stream = UserStream(USER)
    got = frames(feed(stream, [vp(0, packets[0]), vp(1, b"\xff\xff\xff\xff"), vp(2, packets[2])]))
    assert [f.kind for f in got] == ["audio", "audio", "audio"]
    assert stream.stats.decode_errors == 1 and len(got[1].pcm) == 3840


@pytest.mark.parametrize("jump", [-20_000, 30_000])
def test_sequence_renumbered_after_a_reconnect_keeps_playing(packets, jump):
    """After a voice reconnect the SFU numbers the sender's packets afresh (any offset); the sender's
    RTP clock runs on. The stream must follow, not call every packet late (heard as silence)."""
    stream = UserStream(USER)
    out = []
    for i in range(30):
        out += stream.push(vp(i, packets[i]))
    for i in range(30, 60):
        out += stream.push(vp(i, packets[i], seq0=100 + jump))
    out += stream.poll(60 * 0.02 + 1)
    audio = [f.pcm for f in frames(out) if f.kind == "audio"]
    assert audio == reference(packets)
    assert stream.stats.resyncs == 1 and stream.stats.late == 0


def renumbered_backwards(stream, packets, *, told, jump=-300):
    """30 packets, then the other 30 numbered `jump` lower (within the resync distance); `told`: the
    stream hears of the new voice session in between, as the receiver tells every stream."""
    out = []
    for i in range(30):
        out += stream.push(vp(i, packets[i]))
    if told:
        stream.expect_renumbering()
    for i in range(30, 60):
        out += stream.push(vp(i, packets[i], seq0=100 + jump))
    return out + stream.poll(60 * 0.02 + 1)


def test_a_new_session_that_renumbers_backwards_loses_nothing_when_told(packets):
    stream = UserStream(USER)
    audio = [f.pcm for f in frames(renumbered_backwards(stream, packets, told=True)) if f.kind == "audio"]
    assert audio == reference(packets)
    assert stream.stats.resyncs == 1 and stream.stats.late == 0


def test_a_run_of_late_packets_is_taken_for_a_new_numbering(packets):
    """Not told (a numbering restart we cannot see): reordering makes single packets late, a run of
    them means the numbering went back; the stream follows it after `late_run_resync` packets."""
    stream = UserStream(USER)
    audio = [f.pcm for f in frames(renumbered_backwards(stream, packets, told=False)) if f.kind == "audio"]
    lost = stream.late_run_resync - 1
    assert len(audio) == 60 - lost and audio[:30] == reference(packets[:30])
    heard = from_pcm(b"".join(audio[30 + 5 :]))  # the decoder's state settles within a few frames
    expected = from_pcm(b"".join(reference(packets)[30 + lost + 5 :]))
    assert np.corrcoef(heard, expected)[0, 1] > 0.95
    assert stream.stats.resyncs == 1 and stream.stats.late == lost


def test_single_late_packets_are_dropped_not_taken_for_a_new_numbering(packets):
    stream = UserStream(USER)
    out = []
    for i in range(40):
        out += stream.push(vp(i, packets[i]))
        if i % 10 == 9:
            out += stream.push(vp(i - 8, packets[i - 8]))  # a duplicate from the past, late
    assert stream.stats.resyncs == 0 and stream.stats.late == 4
    assert [f.pcm for f in frames(out)] == reference(packets[:40])
