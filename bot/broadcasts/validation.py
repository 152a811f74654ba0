"""Turn `/broadcast` options into Palabra broadcast bodies (pure: no I/O, no Discord).

Outputs are typed as one compact string, because a Discord command cannot take a repeated option
and a broadcast has a variable number of outputs:

    es=rtmp://live.example.com/app|STREAM_KEY; fr=srt://relay.example.com:9000|KEY; hls=original,es

- `<lang>=<url>|<stream key>` pushes language `<lang>` to an RTMP (`rtmp://`, `rtmps://`) or SRT
  (`srt://host:port`) server; the stream key is required.
- `hls=<lang>,<lang>,...` is one hosted HLS output (`hls_pull`); `original` is the untranslated audio.
- Items are separated by `;` or new lines.

Limits, and why:
- `MAX_OUTPUTS` = 10 outputs (the HLS entry counts as one). Palabra encodes and pushes a separate
  stream for each push output, so a pasted list or a typo should not silently start a large, billed
  fan-out; ten already covers a community show restreamed per language to two platforms. It also
  keeps the spec well inside Discord's 6000-character limit for an option and its reply readable.
- `MAX_TARGETS` = 10 translation targets, for the same cost reason (each is a translation + TTS).
- `original_delay_seconds` 0..60 (the "dubbing" delay of the original under the translation; the
  emulator accepts the same range), volumes 0..1, titles up to 100 characters.

Language codes: a well-formed but unknown code is a warning (Palabra's lists change without notice);
a malformed one is an error. Every error is an `InvalidBroadcastInput` whose message says what is
accepted. Stream keys never appear in messages or in `describe()` output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bot.errors import UserFacingError
from bot.palabra.errors import InvalidTaskError
from bot.palabra.languages import check_source, check_target, check_targets, normalise

MAX_OUTPUTS = 10
MAX_TARGETS = 10
MAX_TITLE = 100
MAX_DELAY_S = 60.0
MAX_URL = 512
MAX_STREAM_KEY = 256
INPUT_PROTOCOLS = ("rtmp_push", "srt_push")
DEFAULT_VOICE = "default_low"
ORIGINAL = "original"
HLS = "hls"
OUTPUT_SYNTAX = "es=rtmp://host/app|STREAM_KEY; fr=srt://host:9000|STREAM_KEY; hls=original,es"

_VOICE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_SCHEMES = {"rtmp": "rtmp_push", "rtmps": "rtmp_push", "srt": "srt_push"}


class InvalidBroadcastInput(UserFacingError, ValueError):
    """The options cannot make a broadcast; the message says what was wrong and what is accepted."""


@dataclass(frozen=True)
class OutputSpec:
    """One output: a push (`rtmp_push`/`srt_push`, one language) or the hosted HLS (`hls_pull`)."""

    protocol: str
    lang_codes: tuple[str, ...]
    server: str | None = None
    stream_key: str | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        if self.protocol == "hls_pull":
            return {"protocol": self.protocol, "lang_codes": list(self.lang_codes)}
        return {
            "protocol": self.protocol,
            "lang_code": self.lang_codes[0],
            "server": self.server,
            "stream_key": self.stream_key,
        }

    def describe(self) -> str:
        """For messages: never the stream key."""
        if self.protocol == "hls_pull":
            return f"HLS ({', '.join(self.lang_codes)})"
        return f"{self.lang_codes[0]} → {self.server} (stream key hidden)"


@dataclass(frozen=True)
class BroadcastRequest:
    """A validated `/broadcast create`; `body()` is what `POST /broadcasts` gets."""

    title: str
    source: str
    targets: tuple[str, ...]
    input_protocol: str
    outputs: tuple[OutputSpec, ...]
    voices: dict[str, str] = field(default_factory=dict)
    mixing: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def stream_keys(self) -> list[str]:
        return [o.stream_key for o in self.outputs if o.stream_key]

    def body(self) -> dict[str, Any]:
        return {
            "title": self.title,
            **self.mixing,
            "input": {"protocol": self.input_protocol},
            "outputs": [o.body() for o in self.outputs],
            "translation_pipeline": pipeline(self.source, self.targets, self.voices),
        }


@dataclass(frozen=True)
class BroadcastPatch:
    """A validated `/broadcast update`: the PATCH body, the keys it carries and warnings."""

    body: dict[str, Any] = field(repr=False)  # holds the stream keys of changed outputs
    stream_keys: tuple[str, ...] = field(default=(), repr=False)
    warnings: tuple[str, ...] = ()


# --- create -----------------------------------------------------------------------------------------
def parse_create(
    *,
    title: str,
    source: str,
    targets: str,
    input_protocol: str,
    outputs: str,
    voices: str | None = None,
    delay_s: float | None = None,
    base_volume: float | None = None,
    ducked_volume: float | None = None,
    ignore_video: bool | None = None,
) -> BroadcastRequest:
    warnings: list[str] = []
    clean_title = parse_title(title)
    clean_source = _language(check_source, source, warnings)
    target_codes = parse_targets(targets, warnings)
    protocol = parse_input_protocol(input_protocol)
    specs = parse_outputs(outputs, target_codes)
    voice_map = parse_voices(voices, target_codes)
    mixing = parse_mixing(
        delay_s=delay_s, base_volume=base_volume, ducked_volume=ducked_volume, ignore_video=ignore_video
    )
    return BroadcastRequest(
        clean_title, clean_source, target_codes, protocol, specs, voice_map, mixing, tuple(warnings)
    )


def parse_title(title: str) -> str:
    clean = " ".join((title or "").split())
    if not clean:
        raise InvalidBroadcastInput("the title is empty; give the broadcast a name, e.g. 'Friday show'")
    if len(clean) > MAX_TITLE:
        raise InvalidBroadcastInput(f"the title is {len(clean)} characters; at most {MAX_TITLE} are accepted")
    return clean


def parse_input_protocol(value: str) -> str:
    clean = (value or "").strip().lower()
    if clean not in INPUT_PROTOCOLS:
        raise InvalidBroadcastInput(f"input {value!r} is not supported; use one of {', '.join(INPUT_PROTOCOLS)}")
    return clean


def parse_targets(text: str, warnings: list[str]) -> tuple[str, ...]:
    try:
        codes, unknown = check_targets(_split(text or "", ","))
    except InvalidTaskError as exc:
        raise InvalidBroadcastInput(str(exc)) from None
    warnings.extend(unknown)
    if not codes:
        raise InvalidBroadcastInput("no target languages; give comma-separated codes, e.g. 'es,fr'")
    if len(codes) > MAX_TARGETS:
        raise InvalidBroadcastInput(f"{len(codes)} target languages; at most {MAX_TARGETS} are accepted")
    return tuple(codes)


def parse_outputs(text: str, targets: tuple[str, ...]) -> tuple[OutputSpec, ...]:
    items = [item for line in (text or "").splitlines() for item in _split(line, ";")]
    if not items:
        raise InvalidBroadcastInput(f"no outputs; write them like `{OUTPUT_SYNTAX}`")
    if len(items) > MAX_OUTPUTS:
        raise InvalidBroadcastInput(f"{len(items)} outputs; at most {MAX_OUTPUTS} are accepted per broadcast")
    specs = [_parse_output(item, index, targets) for index, item in enumerate(items, 1)]
    if sum(1 for s in specs if s.protocol == "hls_pull") > 1:
        raise InvalidBroadcastInput(
            "only one hls output per broadcast; list all its languages in it, e.g. `hls=original,es,fr`"
        )
    return tuple(specs)


def parse_voices(text: str | None, targets: tuple[str, ...]) -> dict[str, str]:
    """`es=voice_id, fr=voice_id` -> {"es": "voice_id", ...}; every language must be a target."""
    voices: dict[str, str] = {}
    for item in _split(text or "", ","):
        lang, sep, voice = item.partition("=")
        code = normalise(lang)
        if not sep or not voice.strip():
            raise InvalidBroadcastInput(f"voice {item!r} is not `language=voice_id`, e.g. `es=default_low`")
        if code not in targets:
            raise InvalidBroadcastInput(f"voice for {code!r}, which is not a target ({', '.join(targets)})")
        if not _VOICE_RE.match(voice.strip()):
            raise InvalidBroadcastInput(
                f"voice id {voice.strip()!r} is not valid: letters, digits, '_', '-', '.' (at most 64)"
            )
        voices[code] = voice.strip()
    return voices


def parse_mixing(
    *,
    delay_s: float | None = None,
    base_volume: float | None = None,
    ducked_volume: float | None = None,
    ignore_video: bool | None = None,
) -> dict[str, Any]:
    mixing: dict[str, Any] = {}
    if delay_s is not None:
        mixing["original_delay_seconds"] = _number("delay", delay_s, 0.0, MAX_DELAY_S, "seconds")
    if base_volume is not None:
        mixing["original_base_volume"] = _number("original volume", base_volume, 0.0, 1.0, "")
    if ducked_volume is not None:
        mixing["original_ducked_volume"] = _number("ducked volume", ducked_volume, 0.0, 1.0, "")
    if ignore_video is not None:
        mixing["ignore_video"] = bool(ignore_video)
    return mixing


def pipeline(source: str, targets: tuple[str, ...], voices: dict[str, str]) -> dict[str, Any]:
    return {
        "transcription": {"source_language": source},
        "translations": [
            {
                "target_language": target,
                "speech_generation": {"voice_cloning": False, "voice_id": voices.get(target, DEFAULT_VOICE)},
            }
            for target in targets
        ],
    }


# --- update -------------------------------------------------------------------------------------------
def parse_update(
    current: dict[str, Any],
    *,
    title: str | None = None,
    targets: str | None = None,
    outputs: str | None = None,
    voices: str | None = None,
    delay_s: float | None = None,
    base_volume: float | None = None,
    ducked_volume: float | None = None,
    ignore_video: bool | None = None,
) -> BroadcastPatch:
    """The PATCH for the given options, checked against the broadcast as Palabra has it (`current`)."""
    warnings: list[str] = []
    body: dict[str, Any] = {}
    if title is not None:
        body["title"] = parse_title(title)
    source, current_targets, current_voices = read_pipeline(current)
    new_targets = parse_targets(targets, warnings) if targets is not None else current_targets
    if targets is not None or voices is not None:
        kept = {lang: v for lang, v in current_voices.items() if lang in new_targets}
        body["translation_pipeline"] = pipeline(source, new_targets, {**kept, **parse_voices(voices, new_targets)})
    keys: tuple[str, ...] = ()
    if outputs is not None:
        specs = parse_outputs(outputs, new_targets)
        body["outputs"] = [s.body() for s in specs]
        keys = tuple(s.stream_key for s in specs if s.stream_key)
    elif targets is not None:
        _check_outputs_still_fit(current.get("outputs") or [], new_targets)
    body.update(
        parse_mixing(delay_s=delay_s, base_volume=base_volume, ducked_volume=ducked_volume, ignore_video=ignore_video)
    )
    if not body:
        raise InvalidBroadcastInput(
            "nothing to update: give at least one option (title, targets, outputs, voices, "
            "delay, volumes, ignore_video)"
        )
    return BroadcastPatch(body, keys, tuple(warnings))


def read_pipeline(broadcast: dict[str, Any]) -> tuple[str, tuple[str, ...], dict[str, str]]:
    """(source, targets, voices) of a broadcast as Palabra returns it (either pipeline key)."""
    pipe = broadcast.get("translation_pipeline") or broadcast.get("translation_settings") or {}
    source = (pipe.get("transcription") or {}).get("source_language") or "auto"
    targets: list[str] = []
    voices: dict[str, str] = {}
    for translation in pipe.get("translations") or []:
        if isinstance(translation, dict) and isinstance(translation.get("target_language"), str):
            targets.append(translation["target_language"])
            voice = (translation.get("speech_generation") or {}).get("voice_id")
            if isinstance(voice, str):
                voices[translation["target_language"]] = voice
    return source, tuple(targets), voices


def _check_outputs_still_fit(outputs: list[Any], targets: tuple[str, ...]) -> None:
    allowed = set(targets) | {ORIGINAL}
    for output in outputs:
        if not isinstance(output, dict):
            continue
        codes = output.get("lang_codes") or [output.get("lang_code")]
        orphaned = [c for c in codes if c and c not in allowed]
        if orphaned:
            raise InvalidBroadcastInput(
                f"the outputs still use {', '.join(orphaned)}, which would no longer be translated; give new "
                f"outputs in the same update (`{OUTPUT_SYNTAX}`)"
            )


# --- helpers ------------------------------------------------------------------------------------------
def _parse_output(item: str, index: int, targets: tuple[str, ...]) -> OutputSpec:
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise InvalidBroadcastInput(
            f"output {index} is not `language=url|stream_key` or `hls=languages`; example: `{OUTPUT_SYNTAX}`"
        )
    if name.lower() == HLS:
        return OutputSpec("hls_pull", _hls_languages(value, targets))
    lang = _output_language(name, targets)
    url, bar, key = value.partition("|")
    protocol, server = _push_server(url.strip(), lang)
    key = key.strip()
    if not bar or not key:
        raise InvalidBroadcastInput(f"output {lang}: the stream key is missing; write `{lang}={server}|STREAM_KEY`")
    if len(key) > MAX_STREAM_KEY or not _KEY_RE.match(key):
        raise InvalidBroadcastInput(
            f"output {lang}: the stream key must be 1-{MAX_STREAM_KEY} printable characters without spaces"
        )
    return OutputSpec(protocol, (lang,), server, key)


def _hls_languages(value: str, targets: tuple[str, ...]) -> tuple[str, ...]:
    codes: list[str] = []
    for raw in _split(value, ","):
        code = ORIGINAL if raw.strip().lower() == ORIGINAL else _output_language(raw, targets)
        if code not in codes:
            codes.append(code)
    if not codes:
        raise InvalidBroadcastInput("the hls output needs languages, e.g. `hls=original,es`")
    return tuple(codes)


def _output_language(raw: str, targets: tuple[str, ...]) -> str:
    code = _language(check_target, raw, [])
    if code not in targets:
        raise InvalidBroadcastInput(
            f"output language {code!r} is not one of the targets ({', '.join(targets)}); "
            "add it to targets or use 'original' in the hls output"
        )
    return code


def _push_server(url: str, lang: str) -> tuple[str, str]:
    accepted = "rtmp://host[:port]/app, rtmps://host[:port]/app or srt://host:port"
    if not url or len(url) > MAX_URL or any(ch.isspace() for ch in url):
        raise InvalidBroadcastInput(f"output {lang}: the server URL is empty, too long or has spaces; use {accepted}")
    parts = urlsplit(url)
    protocol = _SCHEMES.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if protocol is None or not parts.hostname or port == -1 or "@" in parts.netloc:
        raise InvalidBroadcastInput(f"output {lang}: {url!r} is not a valid server URL; use {accepted}")
    if protocol == "srt_push" and (port is None or parts.path not in ("", "/")):
        raise InvalidBroadcastInput(f"output {lang}: an SRT server is srt://host:port (a port, no path)")
    return protocol, url


def _language(check: Callable[[str], str | None], raw: str, warnings: list[str]) -> str:
    try:
        warning = check(raw)
    except InvalidTaskError as exc:
        raise InvalidBroadcastInput(str(exc)) from None
    if warning:
        warnings.append(warning)
    return normalise(raw)


def _number(name: str, value: float, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidBroadcastInput(f"{name} must be from {low:g} to {high:g}{' ' + unit if unit else ''}")
    return float(value)


def _split(text: str, sep: str) -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]
