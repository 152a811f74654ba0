"""The emulator's WebSocket protocol, driven by a plain `websockets` client over loopback."""

from __future__ import annotations

import asyncio
import base64
import time
import zlib

import numpy as np
import pytest
import soxr
import websockets
from websockets.exceptions import InvalidStatus

from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.emulator.streaming import STREAM_LOGS
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.palabra_ws import connect, url
from tests.fakes.secrets import PALABRA_API_KEY

RATE = 16000
PROBE_SILENCE_DESC = (
    "ValidationError(model='SetTaskRequestMessage', errors=[{'loc': ('pipeline', 'transcription', "
    "'segment_confirmation_silence_threshold'), 'msg': 'ensure this value is greater than or equal to 0.3', "
    "'type': 'value_error.number.not_ge', 'ctx': {'limit_value': 0.3}}])"
)
PROBE_QUEUE_DESC = (
    "ValidationError(model='SetTaskRequestMessage', errors=[{'loc': ('pipeline', 'translation_queue_configs', "
    "'global', '__root__'), 'msg': '`max_queue_level_ms` must be greater than `desired_queue_level_ms`', "
    "'type': 'value_error'}])"
)


def config(**overrides) -> EmulatorConfig:
    values = {"api_keys": {PALABRA_API_KEY}, "enforce_command_rate_limits": False, "pacing_warnings": False}
    values.update(overrides)
    return EmulatorConfig(**values)


async def test_bad_or_missing_token_is_a_plain_403():
    async with serve(config()) as emu:
        for token in ("plbr_wrong", None, ""):
            with pytest.raises(InvalidStatus) as info:
                await websockets.connect(url(emu, token=token))
            assert info.value.response.status_code == 403
        assert emu.state.streams == []


async def test_both_paths_and_nothing_sent_on_open():
    async with serve(config()) as emu:
        for path in ("/streaming-api/v1/speech-to-speech/stream", "/streaming-api/abc/v1/speech-to-speech/stream"):
            client = await connect(emu, path=path)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.ws.recv(), 0.3)
            await client.ws.close()
        assert len(emu.state.streams) == 2


async def test_connection_rate_limit():
    async with serve(config(ws_connections_per_minute=2)) as emu:
        for _ in range(2):
            await (await connect(emu)).ws.close()
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(url(emu))
        assert info.value.response.status_code == 429


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda t: t["pipeline"]["transcription"].update(segment_confirmation_silence_threshold=0.2),
            PROBE_SILENCE_DESC,
        ),
        (
            lambda t: t["pipeline"]["translation_queue_configs"]["global"].update(max_queue_level_ms=5000),
            PROBE_QUEUE_DESC,
        ),
        (
            lambda t: t["pipeline"]["translations"][0].update(target_language="xx"),
            "('pipeline', 'translations', 0, 'target_language'), 'msg': \"unsupported language: 'xx'\"",
        ),
        (
            lambda t: t["input_stream"]["source"].update(sample_rate=8000),
            "('input_stream', 'source', 'sample_rate'), 'msg': 'ensure this value is greater than or equal to 16000'",
        ),
        (lambda t: t["input_stream"]["source"].update(sample_rate=96000), "less than or equal to 48000"),
    ],
)
async def test_set_task_validation_errors_in_palabras_format(mutate, expected):
    task = build_task("en", ["es"])
    mutate(task)
    async with serve(config()) as emu:
        client = await connect(emu)
        await client.send("set_task", task)
        error = await client.until("error")
        assert error["code"] == "VALIDATION_ERROR" and error["param"] is None
        assert expected in error["desc"]
        if expected.startswith("ValidationError("):
            assert error["desc"] == expected
        await client.send("get_task")
        assert (await client.until("error"))["code"] == "NOT_FOUND"


async def test_ack_dialect_started_unchanged_updated_paused_resumed():
    async with serve(config()) as emu:
        client = await connect(emu)
        task = build_task("en", ["es"])
        await client.send("set_task", task)
        assert await client.until("task_status") == {
            "command": "set_task",
            "event": "started",
            "task_status": "running",
        }
        reordered = {k: task[k] for k in reversed(list(task))}
        await client.send("set_task", reordered)
        assert (await client.until("task_status"))["event"] == "unchanged"
        await client.send("set_task", build_task("en", ["es", "fr"]))
        assert (await client.until("task_status"))["event"] == "updated"
        await client.send("pause_task")
        assert await client.until("task_status") == {
            "command": "pause_task",
            "event": "paused",
            "task_status": "paused",
        }
        await client.send("set_task", build_task("en", ["es", "fr"]))
        assert (await client.until("task_status"))["event"] == "resumed"
        await client.send("interrupt_task", {"languages": ["global"], "pause_task": True})
        status = await client.until("task_status")
        assert (status["command"], status["event"], status["task_status"]) == (
            "interrupt_task",
            "interrupted",
            "paused",
        )
        await client.send("get_task")
        current = await client.until("current_task")
        assert current["task_status"] == "paused" and current["pipeline"]["translations"][1]["target_language"] == "fr"


async def test_polling_dialect_not_found_until_running():
    async with serve(config(ack_task_status=False, task_start_delay_s=0.4)) as emu:
        client = await connect(emu)
        await client.send("get_task")
        assert (await client.until("error")) == {"code": "NOT_FOUND", "desc": "No active task found", "param": None}
        task = build_task("en", ["es"])
        await client.send("set_task", task)
        await client.send("get_task")
        assert (await client.until("error"))["code"] == "NOT_FOUND"
        await asyncio.sleep(0.45)
        await client.send("get_task")
        current = await client.until("current_task")
        assert current.pop("task_status") == "running" and current == task
        assert client.of("task_status") == []


async def test_command_rate_limits():
    async with serve(config(enforce_command_rate_limits=True)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.send("get_task")  # shares set_task's 1-per-2-s budget
        error = await client.until("error")
        assert error["code"] == "RATE_LIMIT_EXCEEDED" and "get_task" in error["desc"]
        await client.send("pause_task")
        assert (await client.until("task_status"))["event"] == "paused"
        await client.send("pause_task")
        assert "pause_task" in (await client.until("error"))["desc"]


async def full_utterance(emu, task, pcm, end=None):
    client = await connect(emu)
    await client.send("set_task", task)
    await client.until("task_status")
    await client.audio(pcm)
    await client.send("end_task", end or {})
    await client.rest()
    return client


async def test_full_utterance_results_and_output_audio_correlates_with_input():
    pcm = bursts(RATE, [("silence", 0.5), ("tone", 1.2), ("silence", 1.0), ("noise", 0.8), ("silence", 1.0)])
    async with serve(config()) as emu:
        client = await full_utterance(emu, build_task("en", ["es", "fr"]), pcm)
        assert client.ws.close_code == 1000
        assert client.received[-1] == {"message_type": "end_of_stream", "data": {}}
        validated = [v["transcription"] for v in client.of("validated_transcription")]
        assert len(validated) == 2
        first = validated[0]["segments"][0]
        assert first["start"] == pytest.approx(0.5, abs=0.03) and first["end"] == pytest.approx(1.7, abs=0.03)
        assert first["end_timestamp"] - first["start_timestamp"] == pytest.approx(1.2, abs=0.03)
        partials = [
            m["transcription"]
            for m in client.of("partial_transcription")
            if m["transcription"]["transcription_id"] == validated[0]["transcription_id"]
        ]
        assert len(partials) >= 3
        lengths = [len(p["text"]) for p in partials]
        assert lengths == sorted(lengths) and validated[0]["text"].startswith(partials[-1]["text"])
        translated = [t["transcription"] for t in client.of("translated_transcription")]
        assert [(t["language"], t["translation_part_id"]) for t in translated] == [("es", 0), ("fr", 0)] * 2
        record = emu.state.streams[0]
        assert bytes(record.input_pcm) == pcm and record.messages_in["input_audio_data"] == len(pcm) // 10240 + 1
        for index, utterance in enumerate(validated):
            seg = utterance["segments"][0]
            source = from_pcm(pcm)[int(seg["start"] * RATE) : int(seg["end"] * RATE)]
            expected = soxr.resample(source, RATE, 24000)
            for language in ("es", "fr"):
                chunks = [
                    a
                    for a in client.of("output_audio_data")
                    if a["transcription_id"] == utterance["transcription_id"] and a["language"] == language
                ]
                assert all(c["translation_part_id"] == "0" for c in chunks)
                assert [c["last_chunk"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
                audio = b"".join(base64.b64decode(c["data"]) for c in chunks)
                assert all(len(base64.b64decode(c["data"])) == 9600 for c in chunks[:-1])  # 200 ms at 24 kHz
                score, lag = windowed_xcorr(from_pcm(audio), expected)
                assert score >= 0.99 and lag <= 1, (index, language, score, lag)


async def test_legacy_end_task_form_and_eos_dialect():
    pcm = bursts(RATE, [("tone", 0.6)])  # no trailing silence: end_task confirms it
    async with serve(config(end_message="eos")) as emu:
        client = await full_utterance(emu, build_task("en", ["es"]), pcm, end={"eos_timeout": 4, "force": False})
        assert client.received[-1]["message_type"] == "eos" and client.ws.close_code == 1000
        assert len(client.of("validated_transcription")) == 1


async def test_allowed_message_types_timings_and_zlib_output():
    pcm = bursts(RATE, [("tone", 0.8), ("silence", 0.8)])
    task = build_task(
        "en",
        ["es"],
        allowed_message_types=["translated_transcription", "pipeline_timings"],
        output_format="zlib_pcm_s16le",
    )
    async with serve(config()) as emu:
        client = await full_utterance(emu, task, pcm)
        kinds = {m["message_type"] for m in client.received}
        assert "partial_transcription" not in kinds and "validated_transcription" not in kinds
        assert {"translated_transcription", "pipeline_timings", "output_audio_data"} <= kinds
        audio = b"".join(zlib.decompress(base64.b64decode(a["data"])) for a in client.of("output_audio_data"))
        assert len(audio) / 2 / 24000 == pytest.approx(0.8, abs=0.03)


async def test_text_only_task_gets_no_audio_and_partial_translations_when_asked():
    pcm = bursts(RATE, [("tone", 0.8), ("silence", 0.8)])
    task = build_task("en", ["es"], text_only=True, translate_partials=True)
    async with serve(config()) as emu:
        client = await full_utterance(emu, task, pcm)
        assert client.of("output_audio_data") == []
        assert client.of("partial_translated_transcription")
        assert client.of("translated_transcription")


async def test_stereo_input_is_recorded_and_mixed_down():
    mono = np.frombuffer(bursts(RATE, [("silence", 0.3), ("tone", 0.6), ("silence", 0.8)]), dtype="<i2")
    stereo = np.stack([mono, mono], axis=1).astype("<i2").tobytes()
    async with serve(config()) as emu:
        client = await full_utterance(emu, build_task("en", ["es"], channels=2), stereo)
        assert bytes(emu.state.streams[0].input_pcm) == stereo
        seg = client.of("validated_transcription")[0]["transcription"]["segments"][0]
        assert seg["start"] == pytest.approx(0.3, abs=0.03) and seg["end"] == pytest.approx(0.9, abs=0.03)


async def test_service_timeout_closes_1008_unless_paused():
    async with serve(config(audio_timeout_s=0.4)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.send("pause_task")
        await client.until("task_status")
        await asyncio.sleep(0.7)  # paused: no timeout
        await client.send("set_task", build_task("en", ["es"]))
        assert (await client.until("task_status"))["event"] == "resumed"
        started = time.monotonic()
        error = await client.until("error", timeout=3)
        assert error["code"] == "SERVICE_TIMEOUT" and "pause_task" in error["desc"]
        assert time.monotonic() - started >= 0.35
        await client.rest()
        assert client.ws.close_code == 1008


async def test_pacing_warning_when_audio_arrives_too_fast():
    async with serve(config(pacing_warnings=True)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.audio(bytes(RATE * 2 * 5))  # 5 s at once
        warning = await client.until("warning")
        assert warning["code"] == "AUDIO_STREAM_TOO_FAST"
        assert emu.runner.app[STREAM_LOGS][1].warnings == ["AUDIO_STREAM_TOO_FAST"]


async def test_interrupt_drops_the_phrase_in_flight():
    async with serve(config()) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.audio(bursts(RATE, [("tone", 0.8)]))
        await client.until("partial_transcription")
        await client.send("flush_task", {"languages": ["global"], "pause_task": False})
        assert (await client.until("task_status"))["command"] == "flush_task"
        await client.audio(bursts(RATE, [("silence", 1.0), ("tone", 0.5), ("silence", 1.0)]))
        await client.send("end_task")
        await client.rest()
        validated = client.of("validated_transcription")
        assert len(validated) == 1
        assert validated[0]["transcription"]["segments"][0]["start"] == pytest.approx(1.8, abs=0.03)


async def test_tts_task_queued_then_audio_with_its_id():
    async with serve(config()) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.send("tts_task", {"text": "Hola!", "language": "fr", "translate_text": False})
        assert (await client.until("error"))["code"] == "VALIDATION_ERROR"
        await client.send("tts_task", {"text": "Hola!", "language": "es", "translate_text": False})
        status = await client.until("task_status")
        assert (status["command"], status["event"]) == ("tts_task", "queued")
        audio = await client.until("output_audio_data")
        assert audio["transcription_id"] == status["transcription_id"] and audio["language"] == "es"


async def test_processing_delay_and_abrupt_drop():
    pcm = bursts(RATE, [("tone", 0.5), ("silence", 0.8)])
    async with serve(config(processing_delay_s=0.3, drop_after_s=0.6, drop_count=1)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        sent = time.monotonic()
        await client.audio(pcm)
        await client.until("validated_transcription")
        assert time.monotonic() - sent >= 0.3
        with pytest.raises(websockets.ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(client.ws.recv(), 3)
        assert info.value.rcvd is None  # no close frame: the transport was cut
        assert emu.runner.app[STREAM_LOGS][1].dropped
        second = await connect(emu)  # drop_count=1: the next connection is left alone
        await second.send("set_task", build_task("en", ["es"]))
        await second.until("task_status")
        await asyncio.sleep(0.8)
        assert not emu.runner.app[STREAM_LOGS][2].dropped


async def test_pacing_warning_when_audio_falls_behind():
    async with serve(config(pacing_warnings=True, time_scale=2.0)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.audio(bytes(RATE))  # 0.5 s, then nothing: wall time (x2) runs ahead of the audio
        warning = await client.until("warning", timeout=4)
        assert warning["code"] == "AUDIO_STREAM_TOO_SLOW"


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        '{"data": {}}',
        '{"message_type": "set_task", "data": [1, 2]}',
        '{"message_type": "set_task", "data": {"pipeline": {"transcription": [], "translations": ["es"]}}}',
        '{"message_type": "set_task", "data": {"input_stream": {"source": {"type": "ws", "format": "pcm_s16le", '
        '"sample_rate": 16000, "channels": 1}}, "pipeline": {"transcription": {"source_language": "en"}, '
        '"translations": [{"target_language": "es"}], '
        '"translation_queue_configs": {"global": {"max_queue_level_ms": "x"}}}}}',
        '{"message_type": "launch_rockets", "data": {}}',
    ],
)
async def test_garbage_gets_an_error_and_the_connection_stays_usable(frame):
    async with serve(config()) as emu:
        client = await connect(emu)
        await client.ws.send(frame)
        assert (await client.until("error"))["code"] == "VALIDATION_ERROR"
        await client.send("set_task", build_task("en", ["es"]))
        assert (await client.until("task_status"))["event"] == "started"


async def test_voice_not_found_warning():
    async with serve(config()) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"], voices={"es": "missing_voice"}))
        warning = await client.until("warning")
        assert warning == {
            "code": "VOICE_NOT_FOUND",
            "message": "Voice ID 'missing_voice' is not available, using default voice",
        }
        assert (await client.until("task_status"))["event"] == "started"


async def test_a_pause_does_not_count_as_audio_too_slow():
    async with serve(config(pacing_warnings=True, time_scale=4.0, enforce_command_rate_limits=False)) as emu:
        client = await connect(emu)
        await client.send("set_task", build_task("en", ["es"]))
        await client.until("task_status")
        await client.audio(bytes(RATE * 2))  # 1 s of audio at 4x: 0.25 s of wall time
        await client.send("pause_task")
        await client.until("task_status")
        await asyncio.sleep(1.0)  # 4 s of (scaled) wall time paused
        await client.send("set_task", build_task("en", ["es"]))
        assert (await client.until("task_status"))["event"] == "resumed"
        await client.audio(bytes(RATE * 2))
        await asyncio.sleep(0.2)
        assert emu.runner.app[STREAM_LOGS][1].warnings == []
