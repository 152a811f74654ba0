"""The languages a start asks for, checked against what Palabra supports (unknown codes are warnings:
the list changes upstream)."""

from __future__ import annotations

from bot.interpretation.errors import InvalidLanguages
from bot.palabra import languages
from bot.palabra.errors import InvalidTaskError


def check_languages(source: str, targets: list[str]) -> tuple[str, list[str], list[str]]:
    """Normalised source and targets plus warnings for unknown codes; InvalidLanguages for unusable input."""
    try:
        source_warning = languages.check_source(source)
        codes, warnings = languages.check_targets(targets)
    except InvalidTaskError as exc:
        raise InvalidLanguages(f"{exc}. See /languages for the supported codes.") from None
    if not codes:
        raise InvalidLanguages(
            "No target language is set: pass `targets` (e.g. `es,fr`) or set the server's "
            "defaults with /setup languages."
        )
    return languages.normalise(source), codes, ([source_warning] if source_warning else []) + warnings
