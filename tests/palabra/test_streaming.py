"""StreamingSession against the bundled emulator over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest
import soxr

from bot.palabra import protocol as p
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.emulator.streaming import STREAM_LOGS
from bot.palabra.errors import AuthenticationError, PalabraConnectionError, SessionClosedError, TaskValidationError
from bot.palabra.streaming import StreamingSession
from bot.palabra.task import build_task
from tests.fakes.audio import bursts, from_pcm, windowed_xcorr
from tests.fakes.secrets import PALABRA_API_KEY, PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET
from tests.fakes.waiting import wait_until

RATE = 16000
SPEED = 4.0  # audio runs 4x faster than real time in these tests (the emulator is told so)
PATTERN = [("silence", 0.5), ("tone", 1.0), ("silence", 1.0), ("noise", 0.8), ("silence", 1.0)]
EXPECTED = [(0.5, 1.5), (2.5, 3.3)]


def config(**overrides) -> EmulatorConfig:
    values = {
        "api_keys": {PALABRA_API_KEY},
        "client_credentials": {PALABRA_CLIENT_ID: PALABRA_CLIENT_SECRET},
        "time_scale": SPEED,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


def api_key() -> Credentials:
    return Credentials.from_api_key(PALABRA_API_KEY)


async def start(emu, task=None, credentials=None, **kwargs) -> StreamingSession:
    options = {"pace": SPEED, "ready_timeout": 10.0}
    options.update(kwargs)
    return await StreamingSession.start(
        credentials=credentials or api_key(), task=task or build_task("en", ["es"]), api_url=emu.base_url, **options
    )


async def collect(session: StreamingSession) -> list[p.Event]:
    return [event async for event in session]


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def assert_output_matches_input(events, pcm):
    for validated in of(events, p.ValidatedTranscription):
        source = from_pcm(pcm)[int(validated.start * RATE) : int(validated.end * RATE)]
        expected = soxr.resample(source, RATE, 24000)
        audio = b"".join(a.pcm for a in of(events, p.OutputAudio) if a.transcription_id == validated.transcription_id)
        score, _lag = windowed_xcorr(from_pcm(audio), expected)
        assert score >= 0.9, (validated.transcription_id, score)


@pytest.mark.parametrize(
    "ack, end_message, dialect",
    [
        (True, "end_of_stream", "auto"),
        (False, "eos", "legacy"),
    ],
)
async def test_full_session_in_both_dialects(ack, end_message, dialect):
    pcm = bursts(RATE, PATTERN)
    async with serve(config(ack_task_status=ack, end_message=end_message)) as emu:
        session = await start(emu, task=build_task("en", ["es", "fr"]), dialect=dialect)
        reader = asyncio.create_task(collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=15)
        events = await asyncio.wait_for(reader, 5)
        record = emu.state.streams[0]

    validated = of(events, p.ValidatedTranscription)
    assert [(round(v.start, 1), round(v.end, 1)) for v in validated] == EXPECTED
    first_partial = events.index(of(events, p.PartialTranscription)[0])
    assert first_partial < events.index(validated[0])
    assert {t.language for t in of(events, p.TranslatedTranscription)} == {"es", "fr"}
    assert len(of(events, p.TranslatedTranscription)) == 4
    assert of(events, p.OutputAudio)[-1].last_chunk
    assert isinstance(events[-1], p.EndOfStream) and events[-1].message_type == end_message
    assert_output_matches_input(events, pcm)
    assert bytes(record.input_pcm[: len(pcm)]) == pcm  # then keep-alive/padding silence only
    assert not any(record.input_pcm[len(pcm) :])
    assert record.close_code == 1000
    if ack:
        assert record.messages_in.get("get_task", 0) == 0
        assert isinstance(events[0], p.TaskStatus) and events[0].confirms_task
    else:
        assert record.messages_in["get_task"] >= 1  # readiness came from polling
    assert session.stats.chunks_sent * session.chunk_bytes == session.stats.bytes_sent
    assert session.stats.audio_bytes_sent == len(pcm)


async def test_app_credentials_create_a_rest_session_first_and_a_new_one_on_reconnect():
    pcm = bursts(RATE, [("tone", 0.6), ("silence", 1.0), ("tone", 2.0), ("silence", 1.0)])
    async with serve(config(drop_after_s=0.8, drop_count=1, pacing_warnings=False)) as emu:
        credentials = Credentials.app(PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET)
        session = await start(emu, credentials=credentials)
        first_id = session.session_id
        reader = asyncio.create_task(collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=10)
        events = await reader
        first, second = emu.state.streams
        assert first.session_id == first_id and second.session_id == session.session_id != first_id
        assert first_id not in emu.state.sessions  # the dropped session was deleted
    assert [(round(v.start, 1), round(v.end, 1)) for v in of(events, p.ValidatedTranscription)] == [
        (0.0, 0.6),
        (1.6, 3.6),
    ]


async def test_reconnect_after_a_drop_loses_no_transcript_and_recovers_the_interrupted_utterance(caplog):
    # The drop comes ~4 s into the audio (1 s of wall time at 4x), in the middle of the 2.5-5.5 s tone.
    pattern = [
        ("silence", 0.5),
        ("tone", 1.0),
        ("silence", 1.0),
        ("tone", 3.0),
        ("silence", 1.0),
        ("noise", 1.0),
        ("silence", 1.0),
    ]
    pcm = bursts(RATE, pattern)
    async with serve(config(drop_after_s=1.0, drop_count=1, pacing_warnings=False)) as emu:
        session = await start(emu, max_reconnects=3)
        reader = asyncio.create_task(collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=20)
        events = await asyncio.wait_for(reader, 5)
        logs = emu.runner.app[STREAM_LOGS]
        assert logs[1].dropped and not logs[2].dropped
        streams = emu.state.streams

    validated = of(events, p.ValidatedTranscription)
    assert [(round(v.start, 1), round(v.end, 1)) for v in validated] == [(0.5, 1.5), (2.5, 5.5), (6.5, 7.5)]
    reconnected = of(events, p.Reconnected)
    assert len(reconnected) == 1 and session.stats.reconnects == 1
    heard_before_drop = len(streams[0].input_pcm) / 2 / RATE
    assert 2.5 < heard_before_drop < 5.5  # the drop came in the middle of the second utterance
    # replayed from the end of the first utterance, covering what the first connection heard (and maybe
    # chunks that were in flight when it was cut)
    assert heard_before_drop - 1.5 - 0.05 <= reconnected[0].replayed_s <= heard_before_drop - 1.5 + 1.0
    replayed = bytes(streams[1].input_pcm[: int(reconnected[0].replayed_s * RATE) * 2])
    offset = int(1.5 * RATE) * 2
    assert replayed[: 2 * RATE] == pcm[offset : offset + 2 * RATE]
    assert events.index(reconnected[0]) < events.index(validated[1])
    assert_output_matches_input(events, pcm)
    assert any(
        "reconnected to Palabra" in r.message and "replaying" in r.message and r.levelno == logging.WARNING
        for r in caplog.records
    )


async def test_chunks_are_exact_and_the_schedule_is_real_time():
    seconds = 4.0
    pcm = bursts(RATE, [("noise", seconds)])
    async with serve(config(time_scale=1.0)) as emu:
        session = await start(emu, pace=1.0, chunk_ms=320)
        reader = asyncio.create_task(collect(session))
        await session.send_audio(pcm)
        await session.end(timeout=2)  # the buffered 4 s are sent first, at their pace, whatever the timeout
        await reader
        log = emu.runner.app[STREAM_LOGS][1]
    chunk = int(RATE * 0.32) * 2
    assert set(log.chunk_bytes) == {chunk}
    n = len(pcm) // chunk
    assert len(log.chunk_bytes) == n + 1 and session.stats.audio_bytes_sent == len(pcm)  # + the padded tail
    times = np.array(log.chunk_times[:n]) - log.chunk_times[0]
    ideal = np.arange(n) * 0.32
    span = times[-1]
    assert abs(span - ideal[-1]) <= 0.05 * ideal[-1], span
    assert np.max(np.abs(times - ideal)) <= 0.05 * ideal[-1]
    assert log.warnings == []


async def test_validation_error_surfaces_palabras_message_at_once():
    task = build_task("en", ["es"])
    task["pipeline"]["transcription"]["segment_confirmation_silence_threshold"] = 0.2
    for ack in (True, False):
        async with serve(config(ack_task_status=ack)) as emu:
            started = time.monotonic()
            with pytest.raises(TaskValidationError) as info:
                await start(emu, task=task)
            assert time.monotonic() - started < 2.0  # not after a readiness timeout
        assert info.value.code == "VALIDATION_ERROR"
        assert "ensure this value is greater than or equal to 0.3" in info.value.desc
        assert "segment_confirmation_silence_threshold" in str(info.value)


async def test_bad_key_is_an_authentication_error_without_the_key():
    async with serve(config()) as emu:
        with pytest.raises(AuthenticationError) as info:
            await start(emu, credentials=Credentials.from_api_key("plbr_not_the_right_key_000"))
    assert info.value.status == 403 and "plbr_" not in str(info.value)


async def test_a_failed_start_leaves_no_rest_session_behind():
    task = build_task("en", ["es"])
    task["pipeline"]["transcription"]["segment_confirmation_silence_threshold"] = 0.2
    credentials = Credentials.app(PALABRA_CLIENT_ID, PALABRA_CLIENT_SECRET)
    async with serve(config()) as emu:
        for _ in range(2):
            with pytest.raises(TaskValidationError):
                await start(emu, task=task, credentials=credentials)
        assert len(emu.state.streams) == 2  # each attempt made a session and connected with it ...
        assert emu.state.sessions == {}  # ... and deleted it again


async def test_a_malformed_stream_url_is_a_transport_error_without_the_key():
    # websockets' InvalidURI quotes the whole URL, token included.
    with pytest.raises(PalabraConnectionError) as info:
        await StreamingSession.start(
            credentials=api_key(), task=build_task("en", ["es"]), api_url="http://user@127.0.0.1:1", ready_timeout=2.0
        )
    assert PALABRA_API_KEY not in str(info.value)


async def test_keepalive_silence_prevents_service_timeout():
    async with serve(config(audio_timeout_s=1.0, time_scale=1.0)) as emu:
        session = await start(emu, pace=1.0)
        reader = asyncio.create_task(collect(session))
        await session.send_audio(bursts(RATE, [("tone", 0.3)]))
        await asyncio.sleep(3.0)  # the producer is silent for 3x the timeout
        await session.end(timeout=5)
        events = await reader
        record = emu.state.streams[0]
    assert not [e for e in events if isinstance(e, p.ErrorMessage)]
    assert session.stats.reconnects == 0 and session.stats.silence_chunks >= 8
    assert record.close_code == 1000 and len(emu.state.streams) == 1


async def test_service_timeout_is_reported_and_the_session_reconnects():
    # A timeout shorter than one chunk interval: the server gives up between two chunks.
    async with serve(config(audio_timeout_s=0.25, time_scale=1.0, pacing_warnings=False)) as emu:
        session = await start(emu, pace=1.0, chunk_ms=320, max_reconnects=2)
        events: list[p.Event] = []
        async for event in session:
            events.append(event)
            if isinstance(event, p.ErrorMessage):
                emu.state.config.audio_timeout_s = 10.0  # let the second connection live
            if isinstance(event, p.Reconnected):
                break
        await session.end(timeout=5)
        timeouts = [e for e in events if isinstance(e, p.ErrorMessage)]
        assert timeouts[0].code == "SERVICE_TIMEOUT"
        assert emu.state.streams[0].close_code == 1008 and session.stats.reconnects == 1


async def test_pause_resume_interrupt():
    async with serve(config(audio_timeout_s=0.5, time_scale=1.0)) as emu:
        session = await start(emu, pace=1.0)
        await session.pause()
        await session.send_audio(bursts(RATE, [("tone", 0.5)]))  # dropped: paused on purpose
        await asyncio.sleep(1.0)  # longer than the audio timeout: paused streams do not time out
        await session.resume()
        await session.interrupt()
        await session.end(timeout=5)
        events = await collect(session)
        record = emu.state.streams[0]
    statuses = [(e.command, e.event) for e in of(events, p.TaskStatus)]
    assert statuses == [
        ("set_task", "started"),
        ("pause_task", "paused"),
        ("set_task", "resumed"),
        ("interrupt_task", "interrupted"),
    ]
    assert not of(events, p.ErrorMessage) and record.close_code == 1000
    assert not any(record.input_pcm)


async def test_legacy_interrupt_is_flush_task():
    async with serve(config()) as emu:
        session = await start(emu, dialect="legacy")
        await session.interrupt(["es"])
        await session.end(timeout=5)
        events = await collect(session)
        assert emu.state.streams[0].messages_in.get("flush_task") == 1
    assert ("flush_task", "interrupted") in [(e.command, e.event) for e in of(events, p.TaskStatus)]


async def test_reconnects_are_bounded_and_the_failure_surfaces():
    async with serve(config(drop_after_s=0.3, drop_count=0, pacing_warnings=False)) as emu:
        session = await start(emu, max_reconnects=2)
        await session.send_audio(bursts(RATE, [("tone", 1.0)]))
        events: list[p.Event] = []
        with pytest.raises(SessionClosedError, match="failed"):
            async for event in session:
                events.append(event)
        with pytest.raises(SessionClosedError):
            await session.send_audio(bytes(640))
        await session.close()
        assert len(emu.state.streams) == 3  # the first connection and two reconnects, all dropped
    assert len(of(events, p.Reconnected)) == 2 and session.stats.reconnects == 2


async def test_end_during_a_reconnect_waits_for_it_and_keeps_the_tail():
    pcm = bursts(RATE, [("silence", 0.5), ("tone", 6.0)])  # no trailing silence: only end_task confirms it
    async with serve(config(drop_after_s=0.8, drop_count=1, pacing_warnings=False)) as emu:
        session = await start(emu)
        reader = asyncio.create_task(collect(session))
        await session.send_audio(pcm)
        logs = emu.runner.app[STREAM_LOGS]
        await wait_until(lambda: 1 in logs and logs[1].dropped, what="the emulator to drop the first stream")
        await session.end(timeout=15)  # the reconnect has not finished yet
        events = await asyncio.wait_for(reader, 5)
        assert bytes(emu.state.streams[1].input_pcm).startswith(pcm[: 2 * RATE])  # replayed from the start
    assert session.stats.reconnects == 1
    validated = of(events, p.ValidatedTranscription)
    assert [(round(v.start, 1), round(v.end, 1)) for v in validated] == [(0.5, 6.5)]
    assert isinstance(events[-1], p.EndOfStream)


async def feed_in_real_time(session: StreamingSession, pcm: bytes, speed: float, lead_s: float = 0.25) -> None:
    """As the session does: `lead_s` of the audio at once (its stream lead, so a late tick of the test
    loop is not padded with silence, which would shift all later audio on the timeline), then 20 ms of
    audio per 20 ms (of audio time at `speed`)."""
    tick = int(RATE * 0.02) * 2
    lead = int(RATE * lead_s) * 2
    await session.send_audio(pcm[:lead])
    started = time.monotonic()
    for k, offset in enumerate(range(lead, len(pcm), tick)):
        await session.send_audio(pcm[offset : offset + tick])
        await asyncio.sleep(max(0.0, started + (k + 1) * 0.02 / speed - time.monotonic()))


async def test_an_idle_pause_stops_the_stream_and_speech_resumes_it_on_one_timeline():
    """Nobody speaks for 6 s of audio: the stream pauses Palabra after 2 s (not billed, no timeout) and
    sends nothing; the next speech resumes it. Both utterances are transcribed at their own place on the
    sender's timeline and their translated audio is the speech there: nothing of it was lost."""
    pattern = [("silence", 0.5), ("tone", 1.0), ("silence", 6.0), ("noise", 0.8), ("silence", 1.5)]
    pcm = bursts(RATE, pattern)
    speed = 2.0  # twice real time: the test loop's own hiccups under a loaded CI stay inside the lead
    async with serve(config(audio_timeout_s=1.0, time_scale=speed)) as emu:  # 1 s wall: 2 s of audio
        session = await start(emu, idle_pause_s=2.0, pace=speed)
        reader = asyncio.create_task(collect(session))
        await feed_in_real_time(session, pcm, speed)
        await session.end(timeout=15)
        events = await asyncio.wait_for(reader, 5)
        record = emu.state.streams[0]
    statuses = [(e.command, e.event) for e in of(events, p.TaskStatus)]
    assert statuses == [("set_task", "started"), ("pause_task", "paused"), ("set_task", "resumed")]
    assert not of(events, p.ErrorMessage)  # no SERVICE_TIMEOUT through a pause longer than it
    validated = of(events, p.ValidatedTranscription)
    assert [(round(v.start, 1), round(v.end, 1)) for v in validated] == [(0.5, 1.5), (7.5, 8.3)]
    assert_output_matches_input(events, pcm)
    heard = bytes(record.input_pcm)
    skipped_s = (len(pcm) - len(heard)) / (2 * RATE)
    assert 2.5 <= skipped_s <= 6.0 - 2.0, skipped_s  # most of the silence never went to Palabra
    noise = pcm[int(7.5 * RATE) * 2 : int(8.3 * RATE) * 2]
    assert noise in heard  # every sample of the speech after the pause, in one piece
    assert session.stats.idle_pauses == 1 and 0.4 < session.stats.idle_paused_s < 6.0 / speed
