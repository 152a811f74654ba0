"""The emulator's `set_task` check, answering in Palabra's own VALIDATION_ERROR format.

The limits are the client's (`bot.palabra.task`), so the two sides cannot drift apart; only the
error shape (pydantic-v1 dicts inside `ValidationError(model='SetTaskRequestMessage', ...)`, as the
probe recorded it) is the server's.
"""

from __future__ import annotations

from typing import Any

from bot.palabra import languages
from bot.palabra.task import (
    INPUT_FORMATS,
    MAX_SAMPLE_RATE,
    MAX_SILENCE_THRESHOLD,
    MIN_SAMPLE_RATE,
    MIN_SILENCE_THRESHOLD,
    OUTPUT_FORMATS,
    SILENCE_THRESHOLD_S,
)

Errors = list[dict[str, Any]]
Loc = tuple[str | int, ...]
DEFAULT_QUEUE_DESIRED_MS, DEFAULT_QUEUE_MAX_MS = 5000, 20000  # Palabra's documented queue defaults


def validation_error_desc(errors: Errors) -> str:
    return f"ValidationError(model='SetTaskRequestMessage', errors={errors!r})"


def validation_errors(task: Any) -> Errors:
    """Pydantic-v1-style error dicts, as Palabra's VALIDATION_ERROR desc shows them."""
    errors: Errors = []
    if not isinstance(task, dict):
        _error(errors, ("__root__",), "value is not a valid dict", "type_error.dict")
        return errors
    pipeline = as_dict(task.get("pipeline"))
    _input_errors(errors, task)
    _transcription_errors(errors, as_dict(pipeline.get("transcription")))
    _translation_errors(errors, pipeline.get("translations"))
    _queue_errors(errors, pipeline.get("translation_queue_configs", task.get("translation_queue_configs")))
    return errors


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _error(errors: Errors, loc: Loc, msg: str, kind: str, ctx: dict[str, Any] | None = None) -> None:
    item: dict[str, Any] = {"loc": loc, "msg": msg, "type": kind}
    if ctx:
        item["ctx"] = ctx
    errors.append(item)


def _permitted(values: tuple[Any, ...]) -> str:
    return "unexpected value; permitted: " + ", ".join(repr(v) for v in values)


def _input_errors(errors: Errors, task: dict[str, Any]) -> None:
    source = as_dict(task.get("input_stream")).get("source")
    if not isinstance(source, dict):
        _error(errors, ("input_stream", "source"), "field required", "value_error.missing")
        return
    if source.get("type", "ws") != "ws":
        return
    rate = source.get("sample_rate")
    if not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        low = not isinstance(rate, int) or rate < MIN_SAMPLE_RATE
        bound = f"greater than or equal to {MIN_SAMPLE_RATE}" if low else f"less than or equal to {MAX_SAMPLE_RATE}"
        _error(errors, ("input_stream", "source", "sample_rate"), f"ensure this value is {bound}", "value_error.number")
    if source.get("format") not in INPUT_FORMATS:
        _error(errors, ("input_stream", "source", "format"), _permitted(INPUT_FORMATS), "value_error.const")
    if source.get("channels", 1) not in (1, 2):
        _error(errors, ("input_stream", "source", "channels"), _permitted((1, 2)), "value_error.const")
    fmt = as_dict(as_dict(task.get("output_stream")).get("target")).get("format", OUTPUT_FORMATS[0])
    if fmt not in OUTPUT_FORMATS:
        _error(errors, ("output_stream", "target", "format"), _permitted(OUTPUT_FORMATS), "value_error.const")


def _transcription_errors(errors: Errors, transcription: dict[str, Any]) -> None:
    loc: Loc = ("pipeline", "transcription")
    source = transcription.get("source_language")
    if source is None:
        _error(errors, (*loc, "source_language"), "field required", "value_error.missing")
    elif source not in languages.SOURCE_LANGUAGES:
        _error(errors, (*loc, "source_language"), f"unsupported language: {source!r}", "value_error")
    threshold = transcription.get("segment_confirmation_silence_threshold", SILENCE_THRESHOLD_S)
    field_loc = (*loc, "segment_confirmation_silence_threshold")
    if not isinstance(threshold, (int, float)) or threshold < MIN_SILENCE_THRESHOLD:
        bound, kind, limit = "greater than or equal to", "not_ge", MIN_SILENCE_THRESHOLD
    elif threshold > MAX_SILENCE_THRESHOLD:
        bound, kind, limit = "less than or equal to", "not_le", MAX_SILENCE_THRESHOLD
    else:
        return
    _error(
        errors, field_loc, f"ensure this value is {bound} {limit}", f"value_error.number.{kind}", {"limit_value": limit}
    )


def _translation_errors(errors: Errors, translations: Any) -> None:
    if not translations or not isinstance(translations, list):
        loc: Loc = ("pipeline", "translations")
        _error(errors, loc, "ensure this value has at least 1 items", "value_error.list.min_items")
        return
    for index, item in enumerate(translations):
        code = as_dict(item).get("target_language")
        if code not in languages.TARGET_LANGUAGES:
            loc = ("pipeline", "translations", index, "target_language")
            _error(errors, loc, f"unsupported language: {code!r}", "value_error")


def _queue_errors(errors: Errors, queues: Any) -> None:
    for name, queue in as_dict(queues).items():
        desired = as_dict(queue).get("desired_queue_level_ms", DEFAULT_QUEUE_DESIRED_MS)
        maximum = as_dict(queue).get("max_queue_level_ms", DEFAULT_QUEUE_MAX_MS)
        loc: Loc = ("pipeline", "translation_queue_configs", name)
        if not all(isinstance(v, (int, float)) for v in (desired, maximum)):
            _error(errors, loc, "value is not a valid integer", "type_error.integer")
        elif maximum <= desired:
            msg = "`max_queue_level_ms` must be greater than `desired_queue_level_ms`"
            _error(errors, (*loc, "__root__"), msg, "value_error")
