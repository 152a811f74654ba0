"""Live transcript updates for whoever subscribes to a session (the caption overlay, for one).

The session publishes each change of a line as a `CaptionUpdate` and, at its very end, `session_ended`.
Updates carry no user ids: only the speaker's display name, which is what a caption shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from bot.interpretation.transcripts import UNKNOWN_SPEAKER, Line, Speaker


@dataclass(frozen=True)
class CaptionUpdate:
    session_id: int
    transcription_id: str
    language: str | None  # a target language, or None for the source transcript
    text: str
    final: bool
    speaker_name: str
    published_at: float  # wall clock (time.time()), so a page's clock can be compared with it


class TranscriptSubscriber(Protocol):
    """Called on the event loop, inline with Palabra's events: must return at once, never block."""

    def caption_updated(self, update: CaptionUpdate) -> None: ...
    def session_ended(self, session_id: int) -> None: ...


def public_name(speaker: Speaker) -> str:
    """The display name, unless it is the "User <id>" stand-in for a member not in the cache."""
    if speaker.user_id is not None and str(speaker.user_id) in speaker.name:
        return UNKNOWN_SPEAKER.name
    return speaker.name


def source_update(session_id: int, line: Line) -> CaptionUpdate:
    return CaptionUpdate(
        session_id, line.transcription_id, None, line.text, line.final, public_name(line.speaker), time.time()
    )


def translation_update(session_id: int, line: Line, language: str) -> CaptionUpdate:
    text = line.translations[language]
    return CaptionUpdate(
        session_id, line.transcription_id, language, text, True, public_name(line.speaker), time.time()
    )


def current_updates(session_id: int, lines: list[Line]) -> Iterator[CaptionUpdate]:
    """What a subscriber joining late gets first: every line so far, in arrival order."""
    for line in sorted(lines, key=lambda line: line.order):
        if line.text:
            yield source_update(session_id, line)
        for language in line.translations:
            yield translation_update(session_id, line, language)
