"""Reading any common audio file (PyAV) into Discord's PCM format, and writing WAV files."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from bot.audio.frames import DISCORD, SAMPLE_WIDTH, AudioFormat, as_samples, downmix, to_pcm, upmix
from bot.errors import BotError


class AudioFileError(BotError):
    """An audio file is missing or cannot be decoded; the message names the file and the reason."""


def read_audio(path: str | Path, fmt: AudioFormat = DISCORD) -> bytes:
    """Decode the first audio stream of `path` (wav, ogg, opus, mp3, flac, m4a, ...) to s16le PCM,
    48 kHz stereo by default."""
    import av  # heavy; imported only when a file is actually read

    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"audio file not found: {path}")
    if not path.is_file():
        raise AudioFileError(f"not a file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path} has no audio stream")
            return _decode(container, fmt)
    except AudioFileError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioFileError(f"cannot read audio from {path}: {_reason(exc)}") from exc


def _decode(container: Any, fmt: AudioFormat) -> bytes:  # an av InputContainer
    """Resample with FFmpeg at the file's own layout (mono stays mono, more channels become stereo),
    then convert channels ourselves: FFmpeg's mono->stereo upmix lowers each channel by 3 dB, whereas
    the bot duplicates mono at full level everywhere (same as the Resampler)."""
    import av

    stream = container.streams.audio[0]
    source_channels = 1 if stream.codec_context.channels == 1 else 2
    layout = "mono" if source_channels == 1 else "stereo"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=fmt.rate)
    frame_bytes = source_channels * SAMPLE_WIDTH
    out = bytearray()
    for frame in container.decode(stream):
        for converted in resampler.resample(frame):
            out += bytes(converted.planes[0])[: converted.samples * frame_bytes]
    for converted in resampler.resample(None):
        out += bytes(converted.planes[0])[: converted.samples * frame_bytes]
    return _convert_channels(bytes(out), source_channels, fmt.channels)


def _convert_channels(pcm: bytes, source: int, target: int) -> bytes:
    if source == target:
        return pcm
    samples = as_samples(pcm, source)
    return to_pcm(upmix(samples) if target == 2 else downmix(samples))


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0] if text.startswith("[Errno") else text


def write_wav(path: str | Path, pcm: bytes, rate: int, channels: int) -> Path:
    """Write s16le PCM as a WAV file (creating the parent directory); returns the path."""
    AudioFormat(rate, channels)  # validates
    if len(pcm) % (SAMPLE_WIDTH * channels):
        raise ValueError(f"PCM length {len(pcm)} is not a whole number of {channels}-channel s16 samples")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def read_wav(path: str | Path) -> tuple[bytes, AudioFormat]:
    """A 16-bit WAV file's PCM and format (for files this project wrote)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != SAMPLE_WIDTH:
                raise AudioFileError(f"{path} is not 16-bit PCM WAV")
            return wav.readframes(wav.getnframes()), AudioFormat(wav.getframerate(), wav.getnchannels())
    except FileNotFoundError:
        raise AudioFileError(f"audio file not found: {path}") from None
    except (wave.Error, EOFError) as exc:
        raise AudioFileError(f"cannot read WAV {path}: {exc}") from exc
