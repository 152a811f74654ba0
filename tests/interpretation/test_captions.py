"""What a session publishes to its transcript subscribers, and what a late subscriber gets first."""

from __future__ import annotations

from bot.interpretation.captions import current_updates, source_update, translation_update
from bot.interpretation.transcripts import Speaker, Transcript


def test_a_late_subscriber_gets_every_line_so_far_in_arrival_order_with_its_translations():
    transcript = Transcript()
    first = transcript.line("t1")
    first.text, first.final, first.speaker = "hello", True, Speaker(11, "Alice")
    first.translations = {"es": "hola", "fr": "salut"}
    second = transcript.line("t2")
    second.text = "still speak"  # a partial, not yet attributed
    transcript.line("t3")  # nothing said yet: nothing to show
    updates = list(current_updates(7, list(reversed(transcript.lines.values()))))
    assert [(u.transcription_id, u.language, u.text, u.final, u.speaker_name) for u in updates] == [
        ("t1", None, "hello", True, "Alice"),
        ("t1", "es", "hola", True, "Alice"),
        ("t1", "fr", "salut", True, "Alice"),
        ("t2", None, "still speak", False, "Unknown speaker"),
    ]
    assert {u.session_id for u in updates} == {7}


def test_updates_carry_the_display_name_never_the_user_id():
    line = Transcript().line("t1")
    line.text, line.speaker = "hi", Speaker(123456789012345678, "User 123456789012345678")
    line.translations["es"] = "hola"
    for update in (source_update(1, line), translation_update(1, line, "es")):
        assert "123456789012345678" not in repr(update)
