import numpy as np
import pytest

from bot.audio.files import AudioFileError, read_audio, read_wav, write_wav
from bot.audio.frames import AudioFormat
from tests.fakes import audio


def test_read_wav_converts_to_48k_stereo(tmp_path):
    tone = audio.sine(800, 1.5, 16000, amplitude=0.4)
    path = write_wav(tmp_path / "tone.wav", audio.to_pcm(tone), 16000, 1)
    pcm = read_audio(path)
    assert len(pcm) == pytest.approx(1.5 * 48000 * 4, abs=4 * 64)
    stereo = audio.from_pcm(pcm, 2)
    assert np.array_equal(stereo[:, 0], stereo[:, 1])
    assert audio.peak_frequency(stereo[:, 0], 48000) == pytest.approx(800, abs=2)
    assert audio.rms(stereo[2000:-2000, 0]) == pytest.approx(audio.rms(tone), rel=0.02)


def test_read_ogg_fixture_matches_reference_decode():
    pcm = read_audio(audio.SPEECH_A)
    reference = audio.fixture_signal(audio.SPEECH_A)
    ours = audio.mono(pcm, 2)
    assert abs(len(ours) - len(reference)) <= 48
    match = audio.xcorr(reference, ours, max_lag=4800)
    assert match.peak > 0.99 and match.lag == 0
    assert len(audio.speech_regions(ours, 48000)) == 2  # the fixture's two sentences


def test_read_audio_to_other_format():
    pcm = read_audio(audio.SPEECH_B, AudioFormat(16000, 1))
    assert len(audio.speech_regions(audio.from_pcm(pcm), 16000)) == 2


def test_wav_round_trip(tmp_path):
    pcm = audio.to_pcm(audio.noise(0.25, 24000), channels=2)
    path = write_wav(tmp_path / "nested" / "out.wav", pcm, 24000, 2)
    data, fmt = read_wav(path)
    assert data == pcm and fmt == AudioFormat(24000, 2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.ogg", "not found"),
        (lambda d: d, "not a file"),
        (lambda d: _write(d / "text.ogg", b"this is not audio at all\n" * 20), "cannot read audio"),
        (lambda d: _write(d / "empty.wav", b""), "cannot read audio"),
        (lambda d: _write(d / "noise.mp3", np.random.default_rng(0).bytes(4096)), "cannot read audio"),
    ],
    ids=["missing", "directory", "text", "empty", "random-bytes"],
)
def test_unreadable_input_gives_a_clear_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(AudioFileError, match=message) as caught:
        read_audio(path)
    assert str(path) in str(caught.value)


def test_write_wav_rejects_partial_samples(tmp_path):
    with pytest.raises(ValueError, match="whole number"):
        write_wav(tmp_path / "x.wav", b"\x00\x01\x02", 48000, 2)


def test_read_wav_errors(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(AudioFileError, match="cannot read WAV"):
        read_wav(_write(tmp_path / "bad.wav", b"RIFF0000WAVEjunk"))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_stereo_file_keeps_its_channels_and_mono_target_averages(tmp_path):
    left, right = audio.sine(500, 1, 44100, amplitude=0.4), audio.sine(1500, 1, 44100, amplitude=0.2)
    path = write_wav(tmp_path / "stereo.wav", audio.to_pcm(np.stack([left, right], axis=1)), 44100, 2)
    stereo = audio.from_pcm(read_audio(path), 2)
    assert audio.peak_frequency(stereo[:, 0], 48000) == pytest.approx(500, abs=2)
    assert audio.peak_frequency(stereo[:, 1], 48000) == pytest.approx(1500, abs=2)
    assert audio.rms(stereo[2000:-2000, 1]) == pytest.approx(audio.rms(right), rel=0.02)
    mono = audio.from_pcm(read_audio(path, AudioFormat(48000, 1)))
    expected = np.sqrt(audio.rms(left) ** 2 + audio.rms(right) ** 2) / 2  # average of two unrelated tones
    assert audio.rms(mono[2000:-2000]) == pytest.approx(expected, rel=0.02)
