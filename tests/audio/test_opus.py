"""libopus via ctypes: round trips compared as signals, FEC/PLC, errors, and where the library comes from."""

import numpy as np
import pytest

from bot.audio import opus
from tests.fakes.audio import SPEECH_A, decode, from_pcm, mono, rms, sine, to_pcm, xcorr


def stereo_frames(signal: np.ndarray) -> list[bytes]:
    pcm = to_pcm(np.repeat(signal[:, None], 2, axis=1).reshape(-1), channels=1)
    usable = len(pcm) - len(pcm) % opus.FRAME_BYTES
    return [pcm[i : i + opus.FRAME_BYTES] for i in range(0, usable, opus.FRAME_BYTES)]


def test_prefers_the_library_bundled_with_pyav():
    paths = opus.candidate_paths()
    assert paths and "av.libs" in paths[0]
    assert opus.library_path() == paths[0]
    assert opus.version().startswith("libopus")


def test_missing_library_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(opus, "_lib", None)
    monkeypatch.setattr(opus, "candidate_paths", lambda: ["/nonexistent/libopus.so.0"])
    with pytest.raises(opus.OpusUnavailable, match=r"libopus not found.*PyAV"):
        opus.load()


def test_speech_round_trip_correlates():
    pcm = decode(SPEECH_A, rate=48000, channels=2)[: 48000 * 4 * 3]
    frames = [pcm[i : i + opus.FRAME_BYTES] for i in range(0, len(pcm) - opus.FRAME_BYTES + 1, opus.FRAME_BYTES)]
    encoder, decoder = opus.Encoder(), opus.Decoder()
    out = b"".join(decoder.decode(encoder.encode(frame)) for frame in frames)
    assert len(out) == len(frames) * opus.FRAME_BYTES
    corr = xcorr(mono(b"".join(frames), 2), mono(out, 2), max_lag=2000)
    assert corr.peak >= 0.9


def test_same_pcm_as_discord_py_decoder():
    import discord.opus

    if not discord.opus.is_loaded():
        discord.opus.load_opus(opus.library_path())
    packets = [opus.Encoder().encode(f) for f in stereo_frames(sine(440, 0.2, 48000))]
    ours, stock = opus.Decoder(), discord.opus.Decoder()
    for packet in packets:
        assert ours.decode(packet) == stock.decode(packet, fec=False)


def test_fec_recovers_a_lost_frame_better_than_plc():
    frames = stereo_frames(sine(300, 1.0, 48000, amplitude=0.4))
    encoder = opus.Encoder(application="voip", fec=True, expected_packet_loss=0.2, bitrate_kbps=64)
    packets = [encoder.encode(f) for f in frames]
    lost = 30
    reference = opus.Decoder()
    expected = [reference.decode(p) for p in packets][lost]

    with_fec, with_plc = opus.Decoder(), opus.Decoder()
    for p in packets[:lost]:
        with_fec.decode(p)
        with_plc.decode(p)
    recovered = from_pcm(with_fec.decode_fec(packets[lost + 1]), 2)
    concealed = from_pcm(with_plc.conceal(), 2)
    target = from_pcm(expected, 2)
    assert len(recovered) == len(concealed) == len(target)
    assert rms(recovered - target) < rms(target) * 0.5
    assert rms(recovered - target) <= rms(concealed - target)


def test_corrupted_packet_raises_opus_error():
    with pytest.raises(opus.OpusError, match="opus_decode failed"):
        opus.Decoder().decode(b"\xff\xff\xff\xff")


def test_encoder_rejects_wrong_frame_size():
    with pytest.raises(ValueError, match="3840 bytes"):
        opus.Encoder().encode(bytes(100))
