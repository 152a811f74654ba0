"""The official Python SDK (palabra-ai 2.2.1) completes sessions against our emulator.

The SDK is pointed at the emulator the way its own tests point it at their fake server: by
replacing `palabra_ai.client.REGIONS`. SDK 2.2.1 only knows the task_status-ack dialect; against
the polling dialect (the 2026-09 live server) it cannot become ready, which the last test pins down.
"""

from __future__ import annotations

import pytest
import soxr

pytest.importorskip("palabra_ai")

import palabra_ai.client as sdk_client
from palabra_ai import Palabra
from palabra_ai.events import Audio, Raw, StreamEnd, TaskStatus, Transcript
from palabra_ai.exc import NotReadyError, TaskError

from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.secrets import PALABRA_API_KEY

RATE = 24000  # the SDK's default input rate


def config(**overrides) -> EmulatorConfig:
    values = {"api_keys": {PALABRA_API_KEY}, "pacing_warnings": False}
    values.update(overrides)
    return EmulatorConfig(**values)


@pytest.fixture
def point_sdk_at(monkeypatch):
    def point(emu):
        region = sdk_client.Region(
            translation=f"{emu.ws_base_url}/streaming-api/{{random_hash}}/v1/speech-to-speech/stream"
        )
        monkeypatch.setattr(sdk_client, "REGIONS", {"eu": region})
        return Palabra(api_key=PALABRA_API_KEY, region="eu")

    return point


@pytest.mark.parametrize("end_message", ["end_of_stream", "eos"])
async def test_sdk_translates_a_session(point_sdk_at, end_message):
    pcm = bursts(RATE, [("silence", 0.4), ("tone", 1.0), ("silence", 1.0), ("noise", 0.6), ("silence", 1.0)])
    async with serve(config(end_message=end_message)) as emu:
        client = point_sdk_at(emu)
        events = []
        async with client.translation("en", ["es"]) as session:
            await session.send_pcm(pcm, realtime=False, end=True)
            async for event in session:
                events.append(event)
        record = emu.state.streams[0]
        assert len(record.task and record.task["pipeline"]["translations"]) == 1
        assert bytes(record.input_pcm) == pcm
        assert record.messages_in["end_task"] == 1 and record.close_code == 1000

    finals = [e for e in events if isinstance(e, Transcript) and e.is_eos]
    assert [e.type for e in finals] == ["validated_transcription", "translated_transcription"] * 2
    assert any(isinstance(e, Transcript) and not e.is_eos for e in events)  # partials
    if end_message == "end_of_stream":
        assert isinstance(events[-1], StreamEnd)
    else:  # SDK 2.2.1 does not know `eos`: it surfaces as Raw, and the close still ends the stream
        assert isinstance(events[-1], Raw) and events[-1].type == "eos"
    for validated in [e for e in finals if e.type == "validated_transcription"]:
        segment = validated.data["segments"][0]
        source = from_pcm(pcm)[int(segment["start"] * RATE) : int(segment["end"] * RATE)]
        audio = b"".join(e.pcm for e in events if isinstance(e, Audio) and e.id == validated.id)
        score, _ = windowed_xcorr(from_pcm(audio), soxr.resample(source, RATE, 24000))
        assert score >= 0.9


async def test_sdk_controls_get_acks(point_sdk_at):
    async with serve(config(enforce_command_rate_limits=False)) as emu:
        client = point_sdk_at(emu)
        async with client.translation("en", ["es"]) as session:
            await session.pause()
            await session.resume()
            await session.interrupt()
            await session.speak("Hola!", "es")
            await session.end()
            events = [event async for event in session]
    acks = [(e.command, e.event) for e in events if isinstance(e, TaskStatus)]
    assert acks == [
        ("set_task", "started"),
        ("pause_task", "paused"),
        ("set_task", "resumed"),
        ("interrupt_task", "interrupted"),
        ("tts_task", "queued"),
    ]
    queued = next(e for e in events if isinstance(e, TaskStatus) and e.event == "queued")
    assert any(isinstance(e, Audio) and e.id == queued.transcription_id for e in events)


async def test_sdk_rejected_task_fails_fast_with_palabras_message(point_sdk_at):
    async with serve(config()) as emu:
        client = point_sdk_at(emu)
        with pytest.raises(TaskError) as info:
            async with client.translation("en", ["es"], silence_threshold=0.1):
                pass
    assert info.value.code == "VALIDATION_ERROR" and "greater than or equal to 0.3" in info.value.desc


async def test_sdk_2_2_cannot_use_the_polling_dialect(point_sdk_at, monkeypatch):
    monkeypatch.setattr(sdk_client, "READY_TIMEOUT", 1.0)
    async with serve(config(ack_task_status=False)) as emu:
        client = point_sdk_at(emu)
        with pytest.raises(NotReadyError):
            async with client.translation("en", ["es"]):
                pass


async def test_sdk_completes_a_session_against_the_realistic_emulator(point_sdk_at, realism_seed):
    """The official client copes with what realism sends: it is all within Palabra's protocol."""
    pcm = bursts(RATE, [("silence", 0.4), ("tone", 1.0), ("silence", 1.0), ("noise", 0.6), ("silence", 1.0)])
    async with serve(config(realism=realism_seed, realism_delay_s=(0.0, 1.0))) as emu:
        client = point_sdk_at(emu)
        async with client.translation("en", ["es"]) as session:
            await session.send_pcm(pcm, realtime=False, end=True)
            events = [event async for event in session]
    assert isinstance(events[-1], StreamEnd)
    validated = {e.id: e for e in events if isinstance(e, Transcript) and e.type == "validated_transcription"}
    assert len(validated) == 2
    for tid, event in validated.items():
        segment = event.data["segments"][0]
        source = from_pcm(pcm)[int(segment["start"] * RATE) : int(segment["end"] * RATE)]
        audio = b"".join(e.pcm for e in events if isinstance(e, Audio) and e.id == tid)
        score, _ = windowed_xcorr(from_pcm(audio), soxr.resample(source, RATE, 24000))
        assert score >= 0.9
