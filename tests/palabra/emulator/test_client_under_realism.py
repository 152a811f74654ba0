"""Our streaming client (`StreamingSession`) against the emulator in realism mode, over loopback.

Whatever the seed, every utterance's translation arrives (every part, every target), its audio is
that utterance's own input, and the session ends cleanly. The emulator is told the client streams
4x faster than real time, which compresses its 0-7 s pipeline delays to 0-1.75 s.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import soxr

from bot.palabra import protocol as p
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.streaming import StreamingSession
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.secrets import PALABRA_API_KEY

RATE = 16000
SPEED = 4.0
TARGETS = ["es", "fr"]
PATTERN = [
    ("silence", 0.4),
    ("tone", 1.2),
    ("silence", 1.0),
    ("noise", 0.9),
    ("silence", 1.0),
    ("tone", 1.5),
    ("silence", 1.0),
    ("noise", 0.7),
    ("silence", 1.0),
]


async def translate(pcm: bytes, seed: int) -> list[p.Event]:
    config = EmulatorConfig(api_keys={PALABRA_API_KEY}, time_scale=SPEED, realism=seed)
    async with serve(config) as emu:
        session = await StreamingSession.start(
            credentials=Credentials.from_api_key(PALABRA_API_KEY),
            task=build_task("en", TARGETS),
            api_url=emu.base_url,
            pace=SPEED,
            ready_timeout=10.0,
        )
        reader = asyncio.create_task(_collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=30.0)
        return await asyncio.wait_for(reader, 10.0)


async def _collect(session: StreamingSession) -> list[p.Event]:
    return [event async for event in session]


async def test_every_translation_arrives_and_correlates_under_realism(realism_seed):
    pcm = bursts(RATE, PATTERN)
    events = await translate(pcm, realism_seed)
    assert any(isinstance(e, p.EndOfStream) for e in events)
    assert any(isinstance(e, p.OutputAudio) and len(e.pcm) // 2 % 2 for e in events)  # realism was on: odd chunks
    validated = {e.transcription_id: e for e in events if isinstance(e, p.ValidatedTranscription)}
    assert len(validated) == 4
    texts: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for e in events:
        if isinstance(e, p.TranslatedTranscription):
            texts[(e.transcription_id, e.language)][e.translation_part_id or 0] = e.text
    for tid, v in validated.items():
        source = from_pcm(pcm)[int(v.start * RATE) : int(v.end * RATE)]
        expected = soxr.resample(source, RATE, 24000)
        for language in TARGETS:
            parts = texts[(tid, language)]
            assert " ".join(parts[k] for k in sorted(parts)) == f"[{language}] {v.text}", (tid, language)
            audio = b"".join(
                e.pcm
                for e in events
                if isinstance(e, p.OutputAudio) and (e.transcription_id, e.language) == (tid, language)
            )
            score, _lag = windowed_xcorr(from_pcm(audio), expected)
            assert score >= 0.9, (tid, language, score)
