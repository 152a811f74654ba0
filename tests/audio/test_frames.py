import numpy as np
import pytest

from bot.audio.frames import (
    DISCORD,
    FRAME_BYTES,
    FRAME_SAMPLES,
    SILENT_FRAME,
    AudioFormat,
    Chunker,
    FrameAssembler,
    as_samples,
    downmix,
    rms_dbfs,
    saturate,
    to_pcm,
    upmix,
)
from tests.fakes import audio


def test_discord_frame_constants():
    assert (FRAME_SAMPLES, FRAME_BYTES) == (960, 3840)
    assert DISCORD.bytes_for(20) == FRAME_BYTES
    assert len(SILENT_FRAME) == FRAME_BYTES and not any(SILENT_FRAME)


def test_format_arithmetic():
    session = AudioFormat(16000, 1)
    assert session.bytes_for(320) == 10240
    assert session.seconds(32000) == 1.0
    assert len(session.silence(500)) == 16000
    with pytest.raises(ValueError, match="channels"):
        AudioFormat(16000, 6)
    with pytest.raises(ValueError, match="positive"):
        AudioFormat(0, 1)


def test_frame_assembler_reassembles_any_split():
    stream = audio.to_pcm(audio.noise(0.5, 48000), channels=2)[:-1234]  # not frame-aligned
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.integers(0, len(stream), 40))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assembler = FrameAssembler()
    frames = [frame for piece in pieces for frame in assembler.feed(piece)]
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    assert b"".join(frames) == stream[: len(frames) * FRAME_BYTES]
    rest = stream[len(frames) * FRAME_BYTES :]
    assert assembler.pending == len(rest) == len(stream) % FRAME_BYTES
    tail = assembler.flush()
    assert tail == rest + bytes(FRAME_BYTES - len(rest))
    assert assembler.flush() is None


def test_frame_assembler_unpadded_flush():
    assembler = FrameAssembler(4)
    assert assembler.feed(b"abcdef") == [b"abcd"]
    assert assembler.flush(pad=False) == b"ef"


def test_chunker_makes_320ms_chunks_at_session_format():
    session = AudioFormat(16000, 1)
    chunker = Chunker(session)
    chunks = chunker.feed(bytes(session.bytes_for(1000)))
    assert [len(c) for c in chunks] == [10240, 10240, 10240]
    assert chunker.pending == 32000 - 3 * 10240


def test_numpy_helpers():
    stereo = np.array([[1000, 3000], [-32768, -32768], [32767, 32767]], dtype="<i2")
    assert downmix(stereo).tolist() == [2000, -32768, 32767]
    assert upmix(np.array([5, -7], dtype="<i2")).tolist() == [[5, 5], [-7, -7]]
    assert saturate(np.array([40000, -40000, 12], dtype=np.int32)).tolist() == [32767, -32768, 12]
    pcm = to_pcm(stereo)
    assert as_samples(pcm, 2).tolist() == stereo.tolist()


def test_rms_dbfs_of_a_sine_and_silence():
    pcm = audio.to_pcm(audio.sine(1000, 1, 48000, amplitude=0.5))
    assert rms_dbfs(pcm) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    assert rms_dbfs(bytes(100)) == float("-inf")
