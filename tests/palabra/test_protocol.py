"""The protocol in both directions, on the shapes Palabra's servers and SDKs are known to use."""

import base64
import json
import logging
import zlib

import pytest

from bot.palabra import encoding
from bot.palabra import protocol as p


def msg(message_type, data):
    return json.dumps({"message_type": message_type, "data": data})


# --- outgoing ------------------------------------------------------------------------------------
def decoded(command):
    return json.loads(command.to_json())


def test_set_task_carries_the_task_verbatim():
    task = {"input_stream": {"content_type": "audio"}, "pipeline": {"translations": []}}
    assert decoded(p.SetTask(task)) == {"message_type": "set_task", "data": task}


def test_get_task_forms():
    assert decoded(p.GetTask()) == {"message_type": "get_task", "data": {}}
    assert decoded(p.GetTask(exclude_hidden=True)) == {"message_type": "get_task", "data": {"exclude_hidden": True}}


def test_input_audio_data_is_base64():
    pcm = bytes(range(256)) * 4
    out = decoded(p.InputAudioData(pcm))
    assert out["message_type"] == "input_audio_data"
    assert base64.b64decode(out["data"]["data"]) == pcm


def test_pause_interrupt_flush():
    assert decoded(p.PauseTask()) == {"message_type": "pause_task", "data": {}}
    assert decoded(p.InterruptTask()) == {
        "message_type": "interrupt_task",
        "data": {"languages": ["global"], "pause_task": False},
    }
    assert decoded(p.InterruptTask(("es", "fr"), pause_task=True))["data"] == {
        "languages": ["es", "fr"],
        "pause_task": True,
    }
    assert decoded(p.FlushTask())["message_type"] == "flush_task"


def test_end_task_both_forms():
    assert decoded(p.EndTask()) == {"message_type": "end_task", "data": {}}
    assert decoded(p.EndTask(eos_timeout=5, force=False))["data"] == {"eos_timeout": 5, "force": False}
    assert decoded(p.EndTask(force=True))["data"] == {"force": True}
    with pytest.raises(ValueError, match="1-30"):
        p.EndTask(eos_timeout=31)


def test_tts_task():
    assert decoded(p.TtsTask("Hola!", "es")) == {
        "message_type": "tts_task",
        "data": {"text": "Hola!", "language": "es", "translate_text": False},
    }


# --- incoming ------------------------------------------------------------------------------------
PROBE_TRANSLATED = (
    '{"message_type":"translated_transcription","data":{"transcription":{"transcription_id":"1a0e9048dfeed5a3",'
    '"translation_part_id":0,"language":"en","text":"Welcome to real-time translation.",'
    '"segments":[{"text":"Welcome","start":0.32,"end":5.66,"start_timestamp":1790615783.549207,'
    '"end_timestamp":1790615788.889207,"words":[{"word":"Welcome","start":0.32,"end":5.66}]}]}}}'
)


def test_translated_transcription_from_the_probe():
    event = p.parse_message(PROBE_TRANSLATED)
    assert isinstance(event, p.TranslatedTranscription)
    assert event.is_final and event.is_translation
    assert (event.transcription_id, event.language, event.translation_part_id) == ("1a0e9048dfeed5a3", "en", 0)
    assert event.segments[0].start == 0.32 and event.segments[0].end_timestamp == 1790615788.889207
    assert event.segments[0].words[0] == p.Word("Welcome", 0.32, 5.66)
    assert (event.start, event.end) == (0.32, 5.66)


@pytest.mark.parametrize(
    "kind, cls, final, translation",
    [
        ("partial_transcription", p.PartialTranscription, False, False),
        ("validated_transcription", p.ValidatedTranscription, True, False),
        ("partial_translated_transcription", p.PartialTranslatedTranscription, False, True),
        ("translated_transcription", p.TranslatedTranscription, True, True),
    ],
)
def test_every_transcription_type(kind, cls, final, translation):
    event = p.parse_message(
        msg(
            kind,
            {
                "transcription": {
                    "transcription_id": "x",
                    "language": "es",
                    "text": "hola",
                    "segments": [{"text": "hola", "start": 1, "end": 2}],
                }
            },
        )
    )
    assert type(event) is cls
    assert (event.is_final, event.is_translation, event.text) == (final, translation, "hola")


def test_shifted_moves_segments_and_words():
    event = p.parse_message(PROBE_TRANSLATED).shifted(10.0)
    assert event.segments[0].start == pytest.approx(10.32) and event.segments[0].end == pytest.approx(15.66)
    assert event.segments[0].words[0].start == pytest.approx(10.32)
    assert event.segments[0].start_timestamp == 1790615783.549207  # epoch times are not stream times


def test_output_audio_flat_with_string_part_id():
    pcm = b"\x01\x00\xff\x7f" * 100
    event = p.parse_message(
        msg(
            "output_audio_data",
            {
                "transcription_id": "t1",
                "translation_part_id": "0",
                "language": "en",
                "last_chunk": False,
                "data": base64.b64encode(pcm).decode(),
                "chunk_generation_delta": None,
            },
        )
    )
    assert isinstance(event, p.OutputAudio)
    assert (event.pcm, event.translation_part_id, event.last_chunk, event.language) == (pcm, "0", False, "en")
    assert event.duration_s == pytest.approx(200 / 24000)


def test_output_audio_int_part_id_and_zlib():
    pcm = bytes(4800)
    event = p.parse_message(
        msg(
            "output_audio_data",
            {
                "transcription_id": "t1",
                "translation_part_id": 3,
                "language": "es",
                "last_chunk": True,
                "data": base64.b64encode(zlib.compress(pcm)).decode(),
            },
        ),
        zlib_audio=True,
    )
    assert event.pcm == pcm and event.translation_part_id == "3" and event.last_chunk


def test_task_status_and_readiness():
    event = p.parse_message(msg("task_status", {"command": "set_task", "event": "started", "task_status": "running"}))
    assert event == p.TaskStatus("set_task", "started", "running") and event.confirms_task
    assert not p.TaskStatus("pause_task", "paused", "paused").confirms_task
    assert not p.TaskStatus("set_task", "started", "paused").confirms_task
    queued = p.parse_message(
        msg(
            "task_status",
            {"command": "tts_task", "event": "queued", "task_status": "running", "transcription_id": "abc"},
        )
    )
    assert queued.transcription_id == "abc"


def test_current_task_splits_status_from_task():
    event = p.parse_message(
        msg("current_task", {"input_stream": {"content_type": "audio"}, "pipeline": {}, "task_status": "running"})
    )
    assert event == p.CurrentTask({"input_stream": {"content_type": "audio"}, "pipeline": {}}, "running")


@pytest.mark.parametrize(
    "data, desc",
    [
        ({"code": "NOT_FOUND", "desc": "No active task found", "param": None}, "No active task found"),
        ({"code": "X", "description": "js style"}, "js style"),
        ({"code": "X", "msg": "docs style"}, "docs style"),
        (
            {
                "code": "VALIDATION_ERROR",
                "desc": [{"loc": ["pipeline", "transcription"], "msg": "bad"}, {"msg": "worse"}],
            },
            "pipeline.transcription: bad; worse",
        ),
        ({}, ""),
    ],
)
def test_error_text_variants(data, desc):
    event = p.parse_message(msg("error", data))
    assert isinstance(event, p.ErrorMessage) and event.desc == desc
    assert event.code == data.get("code", "UNKNOWN_ERROR")


def test_warning_end_timings_and_buffer_stats():
    assert p.parse_message(msg("warning", {"code": "VOICE_NOT_FOUND", "message": "m"})) == p.WarningMessage(
        "VOICE_NOT_FOUND", "m"
    )
    assert p.parse_message(msg("end_of_stream", {})) == p.EndOfStream("end_of_stream")
    assert p.parse_message(msg("eos", {})) == p.EndOfStream("eos")
    timings = p.parse_message(msg("pipeline_timings", {"transcription_id": "t", "timings": {"total": 1.5, "tts": 0}}))
    assert timings == p.PipelineTimings("t", {"total": 1.5, "tts": 0.0})
    stats = p.parse_message(
        msg(
            "tts_buffer_stats",
            {"stats": {"es": {"current_queue_level_ms": 320, "max_queue_level_ms": 24000}, "timestamp": 12.5}},
        )
    )
    assert stats.stats["es"]["current_queue_level_ms"] == 320 and stats.timestamp == 12.5


def test_double_encoded_data():
    inner = json.dumps({"code": "SERVICE_TIMEOUT", "desc": "No input audio received for 10s.", "param": None})
    event = p.parse_message(json.dumps({"message_type": "error", "data": inner}))
    assert event == p.ErrorMessage("SERVICE_TIMEOUT", "No input audio received for 10s.", None)


def test_unknown_type_and_unknown_fields():
    assert p.parse_message(msg("brand_new", {"a": 1})) == p.Unknown("brand_new", {"a": 1})
    event = p.parse_message(msg("warning", {"code": "W", "message": "m", "extra": [1, 2]}))
    assert event == p.WarningMessage("W", "m")


@pytest.mark.parametrize("frame", ["{}", '{"es":{"current_queue_level_ms":320,"max_queue_level_ms":24000}}'])
def test_frames_without_message_type_are_ignored(frame):
    assert p.parse_message(frame) is None


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '"text"',
        '{"message_type":"error","data":"{broken"}',
        '{"message_type":"error","data":[1]}',
        '{"message_type":"output_audio_data","data":{"data":"!!!notbase64"}}',
        '{"message_type":"partial_transcription","data":{"transcription":{"segments":[{"start":"soon"}]}}}',
    ],
)
def test_malformed_input_never_raises(frame, caplog):
    caplog.set_level(logging.WARNING, logger="bot.palabra.protocol")
    event = p.parse_message(frame)
    assert isinstance(event, p.Malformed) and event.raw == frame
    assert "malformed" in caplog.text


def test_zlib_garbage_is_malformed():
    frame = msg("output_audio_data", {"data": base64.b64encode(b"not zlib").decode()})
    assert isinstance(p.parse_message(frame, zlib_audio=True), p.Malformed)


def test_bytes_frames_are_accepted():
    assert p.parse_message(msg("eos", {}).encode()) == p.EndOfStream("eos")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
message_types = st.sampled_from(
    [
        "partial_transcription",
        "validated_transcription",
        "translated_transcription",
        "output_audio_data",
        "task_status",
        "current_task",
        "error",
        "warning",
        "eos",
        "end_of_stream",
        "pipeline_timings",
        "tts_buffer_stats",
        "other",
    ]
)


@settings(max_examples=300, deadline=None)
@given(message_types, json_values)
def test_parse_message_never_raises_on_arbitrary_server_data(message_type, data):
    frame = json.dumps({"message_type": message_type, "data": data})
    event = p.parse_message(frame)
    assert event is None or isinstance(event, p.Event)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_parse_message_never_raises_on_garbage(frame):
    event = p.parse_message(frame)
    assert event is None or isinstance(event, p.Event)


# --- server-side encoding (used by the emulator) ---------------------------------------------------
_SEGMENT = p.Segment("hola", 0.32, 1.5, 1790615783.5, 1790615784.7, (p.Word("hola", 0.32, 1.5),))
_SERVER_EVENTS = [
    p.PartialTranscription("t1", "en", "hel", (_SEGMENT,)),
    p.ValidatedTranscription("t1", "en", "hello", (_SEGMENT,)),
    p.TranslatedTranscription("t1", "es", "hola", (_SEGMENT,), translation_part_id=1),
    p.PartialTranslatedTranscription("t1", "es", "ho", (_SEGMENT,), translation_part_id=0),
    p.OutputAudio("t1", "es", b"\x01\x00\x02\x00", last_chunk=True, translation_part_id="0"),
    p.TaskStatus("tts_task", "queued", "running", "t2"),
    p.TaskStatus("set_task", "started", "running"),
    p.CurrentTask({"pipeline": {"translations": []}}, "paused"),
    p.ErrorMessage("NOT_FOUND", "No active task found"),
    p.WarningMessage("AUDIO_STREAM_STALLED", "stalled"),
    p.EndOfStream(),
    p.EndOfStream("eos"),
    p.PipelineTimings("t1", {"total": 1.5}),
    p.TtsBufferStats({"es": {"current_queue_level_ms": 320}}, 17.5),
    p.Unknown("queue_status_v2", {"es": 1}),
]


@pytest.mark.parametrize("event", _SERVER_EVENTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("zlib_audio", [False, True])
def test_encoded_server_events_parse_back_to_themselves(event, zlib_audio):
    assert p.parse_message(encoding.encode_json(event, zlib_audio=zlib_audio), zlib_audio=zlib_audio) == event


def test_encoded_shapes_match_the_probe():
    audio = encoding.encode_event(p.OutputAudio("t1", "es", b"\x00\x00", translation_part_id="0"))
    assert audio["data"] == {
        "transcription_id": "t1",
        "translation_part_id": "0",
        "language": "es",
        "last_chunk": False,
        "data": "AAA=",
        "chunk_generation_delta": None,
    }
    final = encoding.encode_event(p.TranslatedTranscription("t1", "es", "hola", translation_part_id=0))
    assert final["data"]["transcription"]["translation_part_id"] == 0  # a number in text, a string in audio
    assert (
        "translation_part_id"
        not in encoding.encode_event(p.ValidatedTranscription("t1", "en", "x"))["data"]["transcription"]
    )
    assert encoding.encode_event(p.TaskStatus("set_task", "started", "running"))["data"] == {
        "command": "set_task",
        "event": "started",
        "task_status": "running",
    }
    with pytest.raises(TypeError):
        encoding.encode_event(p.Reconnected(1, 0.0, "test"))
