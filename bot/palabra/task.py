"""The `set_task` payload: built with Palabra's documented defaults, and checked before sending.

`build_task` writes the full schema (not just the fields we change), so what the server runs is
visible in our logs and the emulator, and a changed server default cannot silently change us.
`validate_task` refuses what Palabra would reject with VALIDATION_ERROR, with a message that says
what is accepted, and returns warnings for what is merely unusual (e.g. an unlisted language).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from typing import Any

from bot.palabra import languages
from bot.palabra.errors import InvalidTaskError, TaskError, TaskValidationError, UnsupportedLanguageError

INPUT_FORMATS = ("pcm_s16le", "opus", "wav")
OUTPUT_FORMATS = ("pcm_s16le", "zlib_pcm_s16le")
STREAM_TYPES = ("ws", "webrtc")
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 16000, 48000
MIN_SILENCE_THRESHOLD, MAX_SILENCE_THRESHOLD = 0.3, 2.0
# The bot's session input: 16 kHz mono cuts Palabra's recognition and confirmation latency with the
# same text as 24 kHz (a third party's A/B test); a sentence is confirmed after this much silence.
SESSION_SAMPLE_RATE = 16000
SILENCE_THRESHOLD_S = 0.7
MESSAGE_TYPES = (
    "partial_transcription",
    "validated_transcription",
    "translated_transcription",
    "partial_translated_transcription",
    "pipeline_timings",
    "tts_buffer_stats",
    "output_audio_data",
)
DEFAULT_MESSAGE_TYPES = ("translated_transcription", "partial_transcription", "validated_transcription")
DEFAULT_VOICE = "default_low"
# Palabra's command rate limits (the management page's rate-limit table): set_task and get_task share
# one budget of 1 per 2 s; pause_task and end_task have 1 per 3 s each. Command -> (budget, seconds).
COMMAND_RATE_LIMITS: dict[str, tuple[str, float]] = {
    "set_task": ("task", 2.0),
    "get_task": ("task", 2.0),
    "pause_task": ("pause_task", 3.0),
    "end_task": ("end_task", 3.0),
}


def build_task(
    source: str,
    targets: Sequence[str],
    *,
    sample_rate: int = SESSION_SAMPLE_RATE,
    channels: int = 1,
    input_format: str = "pcm_s16le",
    voices: dict[str, str] | None = None,
    silence_threshold: float = SILENCE_THRESHOLD_S,
    translate_partials: bool = False,
    allowed_message_types: Iterable[str] | None = None,
    queue_desired_ms: int = 5000,
    queue_max_ms: int = 20000,
    output_format: str = "pcm_s16le",
    text_only: bool = False,
) -> dict[str, Any]:
    """The complete set_task `data` for a WebSocket audio stream (validate with `validate_task`)."""
    source = languages.normalise(source)
    targets = [languages.normalise(t) for t in targets]
    voices = {languages.normalise(k): v for k, v in (voices or {}).items()}
    if allowed_message_types is None:
        message_types = list(DEFAULT_MESSAGE_TYPES)
        if translate_partials:
            message_types.append("partial_translated_transcription")
    else:
        message_types = list(allowed_message_types)
    return {
        "input_stream": {
            "content_type": "audio",
            "source": {"type": "ws", "format": input_format, "sample_rate": sample_rate, "channels": channels},
        },
        "output_stream": None
        if text_only
        else {
            "content_type": "audio",
            "target": {"type": "ws", "format": output_format},
        },
        "pipeline": {
            "preprocessing": _preprocessing(),
            "transcription": _transcription(source, silence_threshold),
            "translations": [_translation(t, voices.get(t, DEFAULT_VOICE), translate_partials) for t in targets],
            "translation_queue_configs": {"global": _queue(queue_desired_ms, queue_max_ms)},
            "allowed_message_types": message_types,
        },
    }


def _preprocessing() -> dict[str, Any]:
    return {
        "enable_vad": True,
        "vad_threshold": 0.5,
        "vad_left_padding": 1,
        "vad_right_padding": 1,
        "pre_vad_denoise": False,
        "pre_vad_dsp": True,
        "record_tracks": [],
    }


def _transcription(source: str, silence_threshold: float) -> dict[str, Any]:
    return {
        "source_language": source,
        "detectable_languages": [],
        "asr_model": "auto",
        "denoise": "none",
        "allow_hotwords_glossaries": True,
        "supress_numeral_tokens": False,
        "diarize_speakers": False,
        "priority": "normal",
        "min_alignment_score": 0.2,
        "max_alignment_cer": 0.8,
        "segment_confirmation_silence_threshold": silence_threshold,
        "only_confirm_by_silence": False,
        "batched_inference": False,
        "force_detect_language": False,
        "calculate_voice_loudness": False,
        "sentence_splitter": {
            "enabled": True,
            "splitter_model": "auto",
            "advanced": {
                "min_sentence_characters": 80,
                "min_sentence_seconds": 4,
                "min_split_interval": 0.6,
                "context_size": 30,
                "segments_after_restart": 15,
                "step_size": 5,
                "max_steps_without_eos": 3,
                "force_end_of_segment": 0.5,
            },
        },
        "verification": {
            "verification_model": "auto",
            "allow_verification_glossaries": True,
            "auto_transcription_correction": False,
            "transcription_correction_style": None,
        },
        "advanced": {
            "filler_phrases": {
                "enabled": False,
                "min_transcription_len": 40,
                "min_transcription_time": 3,
                "phrase_chance": 0.5,
            },
            "ignore_languages": [],
        },
    }


def _translation(target: str, voice_id: str, translate_partials: bool) -> dict[str, Any]:
    return {
        "target_language": target,
        "allowed_source_languages": [],
        "translation_model": "auto",
        "allow_translation_glossaries": True,
        "style": None,
        "translate_partial_transcriptions": translate_partials,
        "speech_generation": {
            "tts_model": "auto",
            "voice_cloning": False,
            "voice_cloning_mode": "static_10",
            "denoise_voice_samples": True,
            "voice_id": voice_id,
            "voice_timbre_detection": {
                "enabled": False,
                "high_timbre_voices": ["default_high"],
                "low_timbre_voices": ["default_low"],
            },
            "speech_tempo_auto": True,
            "speech_tempo_timings_factor": 0,
            "speech_tempo_adjustment_factor": 0.75,
            "advanced": {"f0_variance_factor": 1.2, "energy_variance_factor": 1.5, "with_custom_stress": True},
        },
        "advanced": {},
    }


def _queue(desired_ms: int, max_ms: int) -> dict[str, Any]:
    return {
        "desired_queue_level_ms": desired_ms,
        "max_queue_level_ms": max_ms,
        "auto_tempo": True,
        "min_tempo": 1.15,
        "max_tempo": 1.45,
        "auto_tempo_max_delay_ms": 250,
    }


# --- validation ----------------------------------------------------------------------------------
def validate_task(task: dict[str, Any]) -> list[str]:
    """Warnings for an acceptable task; InvalidTaskError (what is wrong, what is accepted) otherwise."""
    if not isinstance(task, dict):
        raise InvalidTaskError("the task must be a JSON object")
    warnings: list[str] = []
    source_type = _validate_input(task.get("input_stream"))
    _validate_output(task.get("output_stream"), source_type)
    pipeline = task.get("pipeline")
    if not isinstance(pipeline, dict):
        raise InvalidTaskError("the task needs a 'pipeline' object")
    warnings += _validate_transcription(pipeline.get("transcription"))
    warnings += _validate_translations(pipeline.get("translations"))
    queues = pipeline.get("translation_queue_configs", task.get("translation_queue_configs")) or {}
    for name, queue in queues.items():
        _validate_queue(name, queue)
    types = pipeline.get("allowed_message_types", task.get("allowed_message_types")) or []
    unknown = [t for t in types if t not in MESSAGE_TYPES]
    if unknown:
        warnings.append(f"unknown allowed_message_types {unknown}; Palabra may ignore them")
    return warnings


def _validate_input(stream: Any) -> str:
    if not isinstance(stream, dict) or not isinstance(stream.get("source"), dict):
        raise InvalidTaskError("the task needs input_stream.source")
    if stream.get("content_type", "audio") != "audio":
        raise InvalidTaskError(f"input_stream.content_type must be 'audio', got {stream.get('content_type')!r}")
    source = stream["source"]
    kind = source.get("type")
    if kind not in STREAM_TYPES:
        raise InvalidTaskError(f"input_stream.source.type must be one of {STREAM_TYPES}, got {kind!r}")
    if kind == "ws":
        fmt = source.get("format")
        if fmt not in INPUT_FORMATS:
            raise InvalidTaskError(f"input format {fmt!r} is not accepted; use one of {', '.join(INPUT_FORMATS)}")
        rate = source.get("sample_rate")
        if not isinstance(rate, int) or isinstance(rate, bool) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise InvalidTaskError(
                f"input sample rate {rate!r} is out of range; use an integer from {MIN_SAMPLE_RATE} to "
                f"{MAX_SAMPLE_RATE} Hz"
            )
        channels = source.get("channels")
        if channels not in (1, 2) or isinstance(channels, bool):
            raise InvalidTaskError(f"input channels must be 1 or 2, got {channels!r}")
    return str(kind)


def _validate_output(stream: Any, source_type: str) -> None:
    if stream is None:  # text only
        return
    if not isinstance(stream, dict) or not isinstance(stream.get("target"), dict):
        raise InvalidTaskError("output_stream must be null (text only) or have a 'target' object")
    target = stream["target"]
    if target.get("type") != source_type:
        raise InvalidTaskError(
            f"output_stream.target.type {target.get('type')!r} must match input_stream.source.type {source_type!r}"
        )
    fmt = target.get("format", "pcm_s16le")
    if source_type == "ws" and fmt not in OUTPUT_FORMATS:
        raise InvalidTaskError(f"output format {fmt!r} is not accepted; use one of {', '.join(OUTPUT_FORMATS)}")


def _validate_transcription(transcription: Any) -> list[str]:
    if not isinstance(transcription, dict) or "source_language" not in transcription:
        raise InvalidTaskError("pipeline.transcription.source_language is required (a source code or 'auto')")
    warnings = [w for w in [languages.check_source(transcription["source_language"])] if w]
    threshold = transcription.get("segment_confirmation_silence_threshold", 0.7)
    if not isinstance(threshold, (int, float)) or not MIN_SILENCE_THRESHOLD <= threshold <= MAX_SILENCE_THRESHOLD:
        raise InvalidTaskError(
            f"segment_confirmation_silence_threshold {threshold!r} is out of range; use "
            f"{MIN_SILENCE_THRESHOLD}-{MAX_SILENCE_THRESHOLD} s (0.5-0.9 recommended)"
        )
    return warnings


def _validate_translations(translations: Any) -> list[str]:
    if not translations or not isinstance(translations, list):
        raise InvalidTaskError("at least one target language is required (pipeline.translations is empty)")
    warnings: list[str] = []
    seen: set[str] = set()
    for item in translations:
        if not isinstance(item, dict) or "target_language" not in item:
            raise InvalidTaskError("every pipeline.translations entry needs a target_language")
        code = item["target_language"]
        warning = languages.check_target(code)
        if warning:
            warnings.append(warning)
        if code in seen:
            raise InvalidTaskError(f"target language {code!r} is listed twice")
        seen.add(code)
    return warnings


def _validate_queue(name: str, queue: Any) -> None:
    if not isinstance(queue, dict):
        raise InvalidTaskError(f"translation_queue_configs.{name} must be an object")
    desired = queue.get("desired_queue_level_ms", 5000)
    maximum = queue.get("max_queue_level_ms", 20000)
    if maximum <= desired:
        raise InvalidTaskError(
            f"translation_queue_configs.{name}: max_queue_level_ms ({maximum}) must be greater than "
            f"desired_queue_level_ms ({desired})"
        )


def source_format(task: dict[str, Any]) -> tuple[str, int, int]:
    """(format, sample_rate, channels) of the task's input stream."""
    source = task["input_stream"]["source"]
    return (
        source.get("format", "pcm_s16le"),
        int(source.get("sample_rate", SESSION_SAMPLE_RATE)),
        int(source.get("channels", 1)),
    )


def target_languages(task: dict[str, Any]) -> list[str]:
    return [t["target_language"] for t in task.get("pipeline", {}).get("translations", [])]


# --- Palabra's rejection of a task ---------------------------------------------------------------
_LANGUAGE_FIELDS = {"source_language": "source", "target_language": "target"}


def rejection(code: str, desc: str, param: object, task: dict[str, Any]) -> TaskError:
    """The exception for an `error` answer to set_task: a rejected language code becomes
    UnsupportedLanguageError naming the code; other VALIDATION_ERRORs get one readable line
    (`loc: msg`) instead of Palabra's pydantic repr, which stays in `desc`."""
    if code != "VALIDATION_ERROR":
        return TaskError(code, desc, param)
    problems = _validation_problems(desc)
    for loc, _msg in problems:
        role = _LANGUAGE_FIELDS.get(str(loc[-1])) if loc else None
        language = _lookup(task, loc)
        if role and isinstance(language, str):
            return UnsupportedLanguageError(code, desc, param, language=language, role=role)
    summary = "; ".join(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg for loc, msg in problems)
    return TaskValidationError(code, desc, param, summary=summary or None)


def _validation_problems(desc: str) -> list[tuple[tuple[object, ...], str]]:
    """(loc, msg) pairs from `ValidationError(model=..., errors=[{'loc': (...), 'msg': ...}])` (the
    probe's form) or from the `a.b.0.c: msg; ...` text `protocol` makes of a JSON error list."""
    match = re.search(r"errors=(\[.*\])\)\s*$", desc, re.DOTALL)
    if match:
        try:
            items = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            items = []
        return [(tuple(item.get("loc") or ()), str(item.get("msg", ""))) for item in items if isinstance(item, dict)]
    problems: list[tuple[tuple[object, ...], str]] = []
    for part in desc.split("; "):
        loc, sep, msg = part.partition(": ")
        if sep and re.fullmatch(r"[\w.]+", loc):
            problems.append((tuple(int(x) if x.isdigit() else x for x in loc.split(".")), msg))
    return problems


def _lookup(task: Any, loc: tuple[object, ...]) -> Any:
    node = task
    for key in loc:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node
