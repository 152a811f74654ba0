import copy

import pytest

from bot.palabra.errors import InvalidTaskError
from bot.palabra.task import build_task, validate_task


def test_full_schema_with_palabra_defaults():
    task = build_task("en", ["es", "fr"], voices={"es": "my_voice"})
    source = task["input_stream"]["source"]
    assert task["input_stream"]["content_type"] == "audio"
    assert source == {"type": "ws", "format": "pcm_s16le", "sample_rate": 16000, "channels": 1}
    assert task["output_stream"] == {"content_type": "audio", "target": {"type": "ws", "format": "pcm_s16le"}}
    pipeline = task["pipeline"]
    assert pipeline["preprocessing"]["enable_vad"] is True and pipeline["preprocessing"]["vad_threshold"] == 0.5
    transcription = pipeline["transcription"]
    assert transcription["source_language"] == "en"
    assert transcription["segment_confirmation_silence_threshold"] == 0.7
    assert transcription["sentence_splitter"]["advanced"]["min_sentence_characters"] == 80
    assert transcription["verification"]["verification_model"] == "auto"
    es, fr = pipeline["translations"]
    assert es["target_language"] == "es" and es["speech_generation"]["voice_id"] == "my_voice"
    assert fr["speech_generation"]["voice_id"] == "default_low"
    assert es["translate_partial_transcriptions"] is False
    assert es["speech_generation"]["voice_timbre_detection"]["enabled"] is False
    queue = pipeline["translation_queue_configs"]["global"]
    assert (queue["desired_queue_level_ms"], queue["max_queue_level_ms"]) == (5000, 20000)
    assert pipeline["allowed_message_types"] == [
        "translated_transcription",
        "partial_transcription",
        "validated_transcription",
    ]
    assert validate_task(task) == []


def test_options():
    task = build_task(
        "auto",
        ["EN-US"],
        sample_rate=24000,
        channels=2,
        translate_partials=True,
        text_only=False,
        output_format="zlib_pcm_s16le",
        queue_desired_ms=8000,
        queue_max_ms=24000,
        silence_threshold=0.5,
    )
    assert task["input_stream"]["source"]["sample_rate"] == 24000
    assert task["input_stream"]["source"]["channels"] == 2
    assert task["pipeline"]["translations"][0]["target_language"] == "en-us"
    assert task["pipeline"]["translations"][0]["translate_partial_transcriptions"] is True
    assert "partial_translated_transcription" in task["pipeline"]["allowed_message_types"]
    assert task["output_stream"]["target"]["format"] == "zlib_pcm_s16le"
    assert validate_task(task) == []
    custom = build_task("en", ["es"], allowed_message_types=["validated_transcription", "pipeline_timings"])
    assert custom["pipeline"]["allowed_message_types"] == ["validated_transcription", "pipeline_timings"]


def test_text_only_has_null_output_stream():
    task = build_task("en", ["es"], text_only=True)
    assert task["output_stream"] is None
    assert validate_task(task) == []


def test_unknown_languages_warn():
    warnings = validate_task(build_task("xx", ["yy"]))
    assert len(warnings) == 2 and "'xx'" in warnings[0] and "'yy'" in warnings[1]


def broken(mutate):
    task = build_task("en", ["es"])
    mutate(task)
    return task


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t["input_stream"]["source"].update(sample_rate=8000), "16000 to 48000"),
        (lambda t: t["input_stream"]["source"].update(sample_rate=96000), "out of range"),
        (lambda t: t["input_stream"]["source"].update(sample_rate="16000"), "sample rate"),
        (lambda t: t["input_stream"]["source"].update(format="mp3"), "pcm_s16le, opus, wav"),
        (lambda t: t["output_stream"]["target"].update(format="mp3"), "zlib_pcm_s16le"),
        (lambda t: t["input_stream"]["source"].update(channels=6), "1 or 2"),
        (lambda t: t["pipeline"]["transcription"].update(segment_confirmation_silence_threshold=0.2), "0.3-2.0"),
        (lambda t: t["pipeline"]["transcription"].update(segment_confirmation_silence_threshold=2.5), "0.3-2.0"),
        (
            lambda t: t["pipeline"]["translation_queue_configs"]["global"].update(max_queue_level_ms=5000),
            "must be greater than desired_queue_level_ms",
        ),
        (lambda t: t["pipeline"].update(translations=[]), "at least one target"),
        (lambda t: t["output_stream"]["target"].update(type="webrtc"), "must match"),
        (lambda t: t["input_stream"]["source"].update(type="livekit"), "source.type"),
        (lambda t: t["pipeline"]["transcription"].pop("source_language"), "source_language is required"),
        (lambda t: t["pipeline"]["transcription"].update(source_language="not a code"), "not a language code"),
        (
            lambda t: t["pipeline"]["translations"].append(copy.deepcopy(t["pipeline"]["translations"][0])),
            "listed twice",
        ),
        (lambda t: t.pop("pipeline"), "pipeline"),
    ],
)
def test_invalid_tasks_are_refused_with_a_clear_message(mutate, message):
    with pytest.raises(InvalidTaskError, match=message):
        validate_task(broken(mutate))


def test_build_task_refuses_nothing_but_validate_does():
    task = build_task("en", ["es"], sample_rate=8000)
    with pytest.raises(InvalidTaskError):
        validate_task(task)
