"""Palabra language codes: what the API accepts as a source and as a target.

The lists are the union of the current documented lists, older SDK lists and the hidden codes the
server is known to accept. Upstream changes them without notice, so an unknown but well-formed code
is only a warning; a malformed code (not a language tag at all) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.palabra.errors import InvalidTaskError

AUTO = "auto"

_CURRENT_SOURCES = [
    "ar",
    "hy",
    "eu",
    "be",
    "bn",
    "bg",
    "yue",
    "ca",
    "zh",
    "hr",
    "cs",
    "da",
    "nl",
    "en",
    "et",
    "fil",
    "fi",
    "fr",
    "gl",
    "de",
    "el",
    "he",
    "hi",
    "hu",
    "id",
    "ga",
    "it",
    "ja",
    "kk",
    "ko",
    "lv",
    "lt",
    "mk",
    "ms",
    "mt",
    "mr",
    "mn",
    "no",
    "fa",
    "pl",
    "pt",
    "ro",
    "ru",
    "sr",
    "sk",
    "sl",
    "es",
    "sw",
    "sv",
    "ta",
    "th",
    "tr",
    "uk",
    "ur",
    "ug",
    "vi",
    "cy",
]
_OLDER_SOURCES = ["ba", "eo", "ia"]

_CURRENT_TARGETS = [
    "ar",
    "ar-sa",
    "ar-ae",
    "hy",
    "az",
    "be",
    "bs",
    "bg",
    "ca",
    "zh-hans",
    "zh-hant",
    "hr",
    "cs",
    "da",
    "nl",
    "en",
    "en-gb",
    "en-us",
    "et",
    "fil",
    "fi",
    "fr",
    "fr-ca",
    "gl",
    "de",
    "el",
    "he",
    "hi",
    "hu",
    "is",
    "id",
    "it",
    "ja",
    "kk",
    "ko",
    "lv",
    "lt",
    "mk",
    "ms",
    "no",
    "pl",
    "pt",
    "pt-br",
    "ro",
    "ru",
    "sr",
    "sk",
    "sl",
    "es",
    "es-ar",
    "es-ch",
    "es-co",
    "es-la",
    "es-mx",
    "sw",
    "sv",
    "ta",
    "th",
    "tr",
    "uk",
    "ur",
    "vi",
    "cy",
]
_HIDDEN_TARGETS = ["zh", "en-au", "en-ca"]

SOURCE_LANGUAGES: frozenset[str] = frozenset([AUTO, *_CURRENT_SOURCES, *_OLDER_SOURCES])
TARGET_LANGUAGES: frozenset[str] = frozenset([*_CURRENT_TARGETS, *_HIDDEN_TARGETS])

# Sources the "alpha" ASR model can detect automatically.
AUTO_DETECTABLE: frozenset[str] = frozenset(
    [
        "en",
        "uk",
        "it",
        "es",
        "de",
        "pt",
        "tr",
        "ar",
        "ru",
        "pl",
        "fr",
        "id",
        "zh",
        "nl",
        "ja",
        "ko",
        "fi",
        "hu",
        "el",
        "cs",
        "da",
        "he",
        "hi",
    ]
)

# A language tag: 2-3 letter primary subtag, optional subtags of 2-8 letters/digits.
_CODE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def normalise(code: str) -> str:
    """Wire codes are lowercase; users type `en-US`, `es_419` and the like."""
    return code.strip().lower().replace("_", "-")


def _check_shape(code: str, role: str) -> str:
    if not isinstance(code, str) or not code.strip():
        raise InvalidTaskError(f"{role} language is empty; use a code such as 'en' or 'es-mx'")
    norm = normalise(code)
    if norm != AUTO and not _CODE_RE.match(norm):
        raise InvalidTaskError(
            f"{role} language {code!r} is not a language code; use a code such as 'en', 'pt-br' or 'zh-hans'"
        )
    return norm


def check_source(code: str) -> str | None:
    """None if `code` is a known source (or `auto`), else a warning; raises for a malformed code."""
    norm = _check_shape(code, "source")
    if norm in SOURCE_LANGUAGES:
        return None
    return f"source language {norm!r} is not in Palabra's known list; sending it anyway"


def check_target(code: str) -> str | None:
    """None if `code` is a known target, else a warning; raises for a malformed code (or `auto`)."""
    norm = _check_shape(code, "target")
    if norm == AUTO:
        raise InvalidTaskError("'auto' is only valid as a source language; targets need an explicit code")
    if norm in TARGET_LANGUAGES:
        return None
    return f"target language {norm!r} is not in Palabra's known list; sending it anyway"


def check_targets(codes: Iterable[str]) -> tuple[list[str], list[str]]:
    """Normalised target codes (duplicates dropped, order kept) and a warning per unknown one; raises
    InvalidTaskError for a malformed code."""
    targets: list[str] = []
    warnings: list[str] = []
    for code in codes:
        warning = check_target(code)
        if warning:
            warnings.append(warning)
        if normalise(code) not in targets:
            targets.append(normalise(code))
    return targets, warnings


def to_target(source: str) -> str:
    """The target code that speaks the same language as a source code (`en` -> `en-us`, `zh` -> `zh-hans`)."""
    return {"en": "en-us", "zh": "zh-hans"}.get(source, source)


def to_source(target: str) -> str:
    """The source code for a target's language (`en-gb` -> `en`, `zh-hant` -> `zh`, `pt-br` -> `pt`)."""
    if target in SOURCE_LANGUAGES:
        return target
    base = target.split("-", 1)[0]
    return base
