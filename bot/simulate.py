"""`python -m bot simulate`: the bot's audio path on a sound file, without Discord.

The file is decoded to Discord's format (48 kHz stereo), cut into 20 ms frames, mixed as one user on
the mixer's clock, resampled to the session format (16 kHz mono) and streamed to Palabra in real time
(or N x faster against the bundled emulator), followed by trailing silence so the last sentence is
confirmed. The translated speech is laid on the input's timeline, one WAV per target language, and
the transcript is written as JSON lines and SRT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.errors import BotError
from bot.interpretation.srt import format_srt
from bot.palabra.task import SESSION_SAMPLE_RATE
from bot.tasks import cancel_and_wait

if TYPE_CHECKING:
    from bot.palabra.credentials import Credentials
    from bot.palabra.streaming import StreamingSession
    from bot.settings import Settings

log = logging.getLogger(__name__)

TRAILING_SILENCE_S = 2.5  # appended to the input so the last sentence is confirmed before end_task
OUTPUT_RATE, OUTPUT_CHANNELS = 48000, 2


class SimulationError(BotError):
    """Bad input for simulate (file, languages, options); the message says what to change."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="any common audio file (wav, ogg, mp3, flac, ...)")
    parser.add_argument("--source", default="en", help="Palabra source language code, or 'auto' (default: en)")
    parser.add_argument("--targets", required=True, help="comma-separated target language codes, e.g. es,fr")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="run N times faster than real time (bundled emulator only)"
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="use the bundled emulator even when Palabra credentials are configured",
    )


def main(args: argparse.Namespace) -> int:
    from bot.logs import setup_logging
    from bot.settings import load_settings

    settings = load_settings()
    setup_logging("DEBUG" if settings.log_level == "DEBUG" else "WARNING")  # the progress line is the output
    options = Options(
        input=Path(args.input),
        source=args.source,
        targets=args.targets,
        out=Path(args.out),
        speed=args.speed,
        force_emulator=args.emulator,
    )
    result = asyncio.run(simulate(options, settings))
    print(result.summary())
    return 0


# --- options and checks ---------------------------------------------------------------------------


@dataclass
class Options:
    input: Path
    targets: str | Iterable[str]
    out: Path
    source: str = "en"
    speed: float = 1.0
    force_emulator: bool = False
    progress: TextIO | None = field(default_factory=lambda: sys.stderr)


def parse_targets(targets: str | Iterable[str]) -> list[str]:
    from bot.palabra import languages
    from bot.palabra.errors import InvalidTaskError

    items = targets.split(",") if isinstance(targets, str) else list(targets)
    try:
        # Unknown codes are warned about once the task is built; only the shape matters here.
        codes, _unknown = languages.check_targets(item for item in items if item.strip())
    except InvalidTaskError as exc:
        raise SimulationError(str(exc)) from None
    if not codes:
        raise SimulationError("--targets needs at least one language code, e.g. --targets es,fr")
    return codes


def build_session_task(source: str, targets: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The set_task body and any warnings (unknown but well-formed codes); malformed codes raise."""
    from bot.palabra.errors import InvalidTaskError
    from bot.palabra.task import build_task, validate_task

    try:
        task = build_task(source, targets)  # the live session's format and silence threshold
        return task, validate_task(task)
    except InvalidTaskError as exc:
        raise SimulationError(str(exc)) from None


# --- the bot's input path -------------------------------------------------------------------------


def convert_input(
    pcm48k_stereo: bytes, session_rate: int = SESSION_SAMPLE_RATE, trailing_silence_s: float = TRAILING_SILENCE_S
) -> bytes:
    """What the bot sends Palabra for this audio: 20 ms frames -> mixer (one user) -> session format.
    Trailing silence comes from the mixer itself (ticks with nobody speaking)."""
    from bot.audio.frames import FRAME_MS, FrameAssembler
    from bot.audio.mixer import Mixer
    from bot.audio.resample import discord_to_session

    assembler, mixer, resampler = FrameAssembler(), Mixer(), discord_to_session(session_rate)
    frames = assembler.feed(pcm48k_stereo)
    tail = assembler.flush()
    if tail is not None:
        frames.append(tail)
    out = bytearray()
    for frame in frames:
        mixer.push("file", frame)
        out += resampler.process(mixer.tick())
    for _ in range(round(trailing_silence_s * 1000 / FRAME_MS)):
        out += resampler.process(mixer.tick())
    out += resampler.flush()
    return bytes(out)


# --- collecting results ---------------------------------------------------------------------------


@dataclass
class Utterance:
    id: str
    start: float | None = None
    end: float | None = None
    language: str | None = None
    text: str = ""
    translations: dict[str, dict[int, str]] = field(default_factory=dict)  # lang -> part -> text
    audio: dict[str, bytearray] = field(default_factory=dict)  # lang -> 24 kHz mono PCM
    order: int = 0  # arrival order, for utterances without times

    def translation_text(self, language: str) -> str:
        parts = self.translations.get(language, {})
        return " ".join(parts[key] for key in sorted(parts))


class Collector:
    """Consumes session events (pure): validated transcripts, translations and output audio per
    utterance, plus the errors and warnings Palabra reported."""

    def __init__(self) -> None:
        self.utterances: dict[str, Utterance] = {}
        self.problems: list[str] = []
        self.reconnects = 0

    def utterance(self, transcription_id: str) -> Utterance:
        if transcription_id not in self.utterances:
            self.utterances[transcription_id] = Utterance(transcription_id, order=len(self.utterances))
        return self.utterances[transcription_id]

    @property
    def confirmed(self) -> int:
        return sum(1 for u in self.utterances.values() if u.start is not None)

    def feed(self, event: Any) -> None:
        from bot.palabra import protocol as p

        if isinstance(event, p.ValidatedTranscription):
            item = self.utterance(event.transcription_id)
            item.language, item.text = event.language, event.text
            if event.segments:
                item.start = min(s.start for s in event.segments)
                item.end = max(s.end for s in event.segments)
        elif isinstance(event, p.TranslatedTranscription):
            parts = self.utterance(event.transcription_id).translations.setdefault(event.language, {})
            parts[event.translation_part_id or 0] = event.text
        elif isinstance(event, p.OutputAudio):
            self.utterance(event.transcription_id).audio.setdefault(event.language, bytearray()).extend(event.pcm)
        elif isinstance(event, p.ErrorMessage):
            self._problem(f"Palabra error {event.code}: {event.desc}")
        elif isinstance(event, p.WarningMessage):
            self._problem(f"Palabra warning {event.code}: {event.message}")
        elif isinstance(event, p.Reconnected):
            self.reconnects += 1
            self._problem(f"reconnected to Palabra (attempt {event.attempt}), replayed {event.replayed_s:.1f} s")

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        log.warning("%s", text)

    def ordered(self) -> list[Utterance]:
        """Utterances with a transcript, in timeline order (ones without times after, by arrival)."""
        found = [u for u in self.utterances.values() if u.text or u.translations]
        return sorted(found, key=lambda u: (u.start is None, u.start or 0.0, u.order))


# --- writing outputs ------------------------------------------------------------------------------


def place_translation(
    utterances: list[Utterance], language: str, input_seconds: float
) -> tuple[bytes, dict[str, float]]:
    """48 kHz stereo PCM for one language: each utterance's audio starts at its source start time,
    or right after the previous one if it would overlap (nothing is cut or mixed over).
    Returns the PCM and where each utterance was placed (seconds)."""
    from bot.audio.resample import palabra_to_discord

    frame = OUTPUT_CHANNELS * 2
    pieces: list[tuple[int, bytes]] = []
    placed: dict[str, float] = {}
    cursor = 0  # first free byte offset on the output timeline
    for item in utterances:
        speech = item.audio.get(language)
        if not speech:
            continue
        resampler = palabra_to_discord()
        pcm = resampler.process(bytes(speech)) + resampler.flush()
        wanted = round((item.start or 0.0) * OUTPUT_RATE) * frame if item.start is not None else cursor
        offset = max(wanted, cursor)
        pieces.append((offset, pcm))
        placed[item.id] = offset / (OUTPUT_RATE * frame)
        cursor = offset + len(pcm)
    total = max(cursor, round(input_seconds * OUTPUT_RATE) * frame)
    out = bytearray(total)
    for offset, pcm in pieces:
        out[offset : offset + len(pcm)] = pcm
    return bytes(out), placed


def transcript_records(
    utterances: list[Utterance], targets: list[str], placements: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    records = []
    for item in utterances:
        records.append(
            {
                "id": item.id,
                "start": item.start,
                "end": item.end,
                "language": item.language,
                "text": item.text,
                "translations": {lang: item.translation_text(lang) for lang in targets if lang in item.translations},
                "audio_start": {
                    lang: round(placements[lang][item.id], 3) for lang in targets if item.id in placements.get(lang, {})
                },
            }
        )
    return records


def write_srt(path: Path, records: list[dict[str, Any]]) -> None:
    cues = (
        (
            record["start"],
            record["end"],
            [record["text"]] + [f"{lang}: {text}" for lang, text in record["translations"].items()],
        )
        for record in records
    )
    path.write_text(format_srt(cues), encoding="utf-8")


@dataclass
class Result:
    out: Path
    backend: str
    wavs: dict[str, Path]
    transcript: Path
    srt: Path
    utterances: int
    input_seconds: float
    problems: list[str]

    def summary(self) -> str:
        lines = [f"{counted(self.utterances, 'utterance')} from {self.input_seconds:.1f} s of audio ({self.backend})"]
        lines += [f"  {lang}: {path}" for lang, path in self.wavs.items()]
        lines += [f"  transcript: {self.transcript}", f"  subtitles:  {self.srt}"]
        return "\n".join(lines)


def check_output_dir(out: Path) -> None:
    """Checked before any audio is streamed, so a bad --out fails at once rather than after the whole file;
    nothing is created yet (a run that fails later leaves no empty directory behind)."""
    existing = next(path for path in (out, *out.parents) if path.exists())
    if not existing.is_dir():
        raise SimulationError(f"cannot create the output directory {out}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SimulationError(f"cannot write to the output directory {out}: permission denied")


def write_outputs(
    out: Path, collector: Collector, targets: list[str], input_seconds: float
) -> tuple[dict[str, Path], Path, Path]:
    from bot.audio.files import write_wav

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(f"cannot create the output directory {out}: {exc.strerror}") from None
    utterances = collector.ordered()
    wavs: dict[str, Path] = {}
    placements: dict[str, dict[str, float]] = {}
    for language in targets:
        pcm, placements[language] = place_translation(utterances, language, input_seconds)
        wavs[language] = write_wav(out / f"{language}.wav", pcm, OUTPUT_RATE, OUTPUT_CHANNELS)
    records = transcript_records(utterances, targets, placements)
    transcript = out / "transcript.jsonl"
    transcript.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    srt = out / "transcript.srt"
    write_srt(srt, records)
    return wavs, transcript, srt


# --- progress -------------------------------------------------------------------------------------


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Progress:
    """One status line on stderr: rewritten in place on a terminal, a line every few seconds otherwise.

    `total_s` is the file's length: the trailing silence streamed after it (so Palabra ends the last
    utterance) shows as "finishing", not as more seconds of the file."""

    def __init__(self, stream: TextIO | None, total_s: float) -> None:
        self.stream, self.total_s = stream, total_s
        self.tty = bool(stream and getattr(stream, "isatty", lambda: False)())
        self._last_line, self._last_print = "", 0.0

    def update(self, streamed_s: float, utterances: int, final: bool = False) -> None:
        if self.stream is None:
            return
        line = (
            f"streamed {min(streamed_s, self.total_s):5.1f} / {self.total_s:.1f} s, {counted(utterances, 'utterance')}"
        )
        if streamed_s > self.total_s and not final:
            line += ", finishing the last utterance"
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final or (line != self._last_line and now - self._last_print >= 2.0):
            self.stream.write(line + "\n")
            self._last_print = now
        else:
            return
        self._last_line = line
        self.stream.flush()


# --- running --------------------------------------------------------------------------------------


async def simulate(options: Options, settings: Settings | None = None) -> Result:
    """Run the whole simulation; raises BotError subclasses with user-facing messages."""
    from bot.audio.files import read_audio

    if not options.speed > 0:
        raise SimulationError(f"--speed must be a positive number, not {options.speed:g}")
    targets = parse_targets(options.targets)
    check_output_dir(options.out)
    task, warnings = build_session_task(options.source, targets)
    for warning in warnings:
        _say(options, f"warning: {warning}")
    if settings is None:
        from bot.settings import load_settings

        settings = load_settings()
    credentials = None if options.force_emulator else _credentials(settings)
    if credentials is not None and options.speed != 1:
        raise SimulationError(
            "--speed other than 1 works only with the bundled emulator: Palabra needs real-time audio "
            "(use --emulator, or unset the PALABRA_* credentials)"
        )

    pcm48k = read_audio(options.input)
    if not pcm48k:
        raise SimulationError(f"{options.input} contains no audio samples")
    input_seconds = len(pcm48k) / (OUTPUT_RATE * OUTPUT_CHANNELS * 2)
    session_pcm = convert_input(pcm48k)
    del pcm48k

    collector = Collector()
    if credentials is None:
        backend = await _run_with_emulator(options, task, session_pcm, collector, input_seconds)
    else:
        backend = f"Palabra at {settings.palabra_api_url}, {credentials.owner_hint}"
        _say(options, f"using {backend}")
        await _stream(options, task, session_pcm, collector, credentials, settings.palabra_api_url, input_seconds)

    wavs, transcript, srt = write_outputs(options.out, collector, targets, input_seconds)
    return Result(
        options.out, backend, wavs, transcript, srt, len(collector.ordered()), input_seconds, collector.problems
    )


def _credentials(settings: Settings) -> Credentials | None:
    from bot.palabra.credentials import Credentials

    return Credentials.from_settings(settings)


async def _run_with_emulator(
    options: Options, task: dict[str, Any], session_pcm: bytes, collector: Collector, input_seconds: float
) -> str:
    from bot.palabra.credentials import Credentials
    from bot.palabra.emulator.app import serve
    from bot.palabra.emulator.config import EmulatorConfig

    key = f"plbr_sim_{secrets.token_hex(16)}"
    credentials = Credentials.from_api_key(key)
    config = EmulatorConfig(api_keys={key}, time_scale=options.speed)
    async with serve(config) as emulator:
        backend = f"bundled Palabra emulator at {emulator.base_url}"
        reason = "--emulator" if options.force_emulator else "no Palabra credentials configured"
        speed = f", {options.speed:g}x real time" if options.speed != 1 else ""
        _say(options, f"using the {backend} ({reason}{speed})")
        await _stream(options, task, session_pcm, collector, credentials, emulator.base_url, input_seconds)
    return backend


async def _stream(
    options: Options,
    task: dict[str, Any],
    session_pcm: bytes,
    collector: Collector,
    credentials: Credentials,
    api_url: str,
    input_seconds: float,
) -> None:
    from bot.palabra.streaming import StreamingSession

    session = await StreamingSession.start(
        credentials=credentials, task=task, api_url=api_url, chunk_ms=320, pace=options.speed
    )
    total_s = len(session_pcm) / session.bytes_per_second  # the file and the trailing silence
    progress = Progress(options.progress, input_seconds)
    reader = asyncio.create_task(_read_events(session, collector), name="simulate-events")
    try:
        await session.send_audio(session_pcm)
        while session.stats.audio_bytes_sent < len(session_pcm):
            if reader.done():
                break  # the session ended early; its error surfaces below
            progress.update(session.stats.audio_bytes_sent / session.bytes_per_second, collector.confirmed)
            await asyncio.sleep(0.1)
        if not reader.done():  # a failed session has nothing to end; its error surfaces from the reader
            await session.end(timeout=30.0 + total_s * 0.1)
        await asyncio.wait_for(reader, timeout=30.0)
    finally:
        if not reader.done():
            await cancel_and_wait(reader)
        await session.close()
        await _forget_rest_session(session, credentials, api_url)
    progress.update(input_seconds, collector.confirmed, final=True)


async def _read_events(session: StreamingSession, collector: Collector) -> None:
    async for event in session:
        collector.feed(event)


async def _forget_rest_session(session: StreamingSession, credentials: Credentials, api_url: str) -> None:
    """App credentials create a REST session per stream; delete it rather than wait for its TTL."""
    if not session.session_id:
        return
    from bot.palabra.rest import PalabraRest

    try:
        async with PalabraRest(credentials, api_url) as rest:
            await rest.delete_session(session.session_id)
    except BotError as exc:
        log.warning("could not delete Palabra session %s (it expires by itself): %s", session.session_id, exc)


def _say(options: Options, text: str) -> None:
    if options.progress is not None:
        options.progress.write(text + "\n")
        options.progress.flush()
