import pytest

from bot.interpretation.errors import InvalidLanguages
from bot.interpretation.manager import check_languages
from bot.interpretation.placement import consent_notice, fallback_placements


def test_first_unplaced_language_plays_in_the_source_channel_and_the_rest_are_text_only():
    placements = fallback_placements(
        [
            ("es", "every speaker bot is busy"),
            ("fr", "no voice channel is set for fr"),
            ("de", "no speaker bot is configured"),
        ],
        source_channel_id=42,
    )
    assert [(p.language, p.kind, p.channel_id) for p in placements.values()] == [
        ("es", "same_channel", 42),
        ("fr", "text_only", None),
        ("de", "text_only", None),
    ]
    assert placements["es"].reason.startswith("every speaker bot is busy")
    assert "text only" in placements["fr"].reason and placements["fr"].reason.startswith("no voice channel")


def test_without_same_channel_everything_is_text_only():
    placements = fallback_placements([("es", "why")], source_channel_id=42, same_channel_allowed=False)
    assert placements["es"].kind == "text_only"
    assert fallback_placements([], 42) == {}


def test_languages_are_normalised_and_unknown_codes_are_warnings_not_errors():
    source, targets, warnings = check_languages("EN", ["es", "fr", "es", "xx-yy"])
    assert (source, targets) == ("en", ["es", "fr", "xx-yy"])
    assert len(warnings) == 1 and "xx-yy" in warnings[0]
    with pytest.raises(InvalidLanguages) as error:
        check_languages("en", ["not a code!"])
    assert "/languages" in error.value.user_message
    with pytest.raises(InvalidLanguages):
        check_languages("en", [])


def test_the_consent_notice_says_what_who_and_how_to_opt_out():
    text = consent_notice(targets=["es", "fr"], transcript_channel_id=7, retention_days=30, started_by="Alice")
    assert "Palabra" in text and "es, fr" in text and "<#7>" in text and "30 days" in text
    assert "/privacy optout" in text and "Alice" in text
