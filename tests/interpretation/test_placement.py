import pytest

from bot.interpretation.errors import InvalidLanguages
from bot.interpretation.manager import check_languages
from bot.interpretation.placement import (
    SpeakerWatch,
    Verdict,
    consent_notice,
    fallback_placements,
    fell_back_line,
    lost_why,
    moved_line,
    refill_same_channel,
    rejoined_line,
    upgradable,
)
from bot.interpretation.reports import Placement


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


def placed(**kinds):
    return {
        language: Placement(
            language, kind, {"sibling": 7, "same_channel": 42}.get(kind), None if kind == "sibling" else "why"
        )
        for language, kind in kinds.items()
    }


def test_languages_out_of_their_sibling_channel_are_upgradable_in_target_order():
    placements = placed(es="same_channel", fr="text_only", de="sibling", it="text_only")
    siblings = {"es": 10, "fr": 11, "de": 12, "it": 42}  # it's channel is the source channel itself
    assert upgradable(placements, siblings, source_channel_id=42) == [("es", 10), ("fr", 11)]
    assert upgradable(placed(es="sibling"), {"es": 10}, 42) == []


def test_a_freed_source_channel_goes_to_the_first_text_only_language():
    refill = refill_same_channel(placed(es="sibling", fr="text_only", de="text_only"), source_channel_id=42)
    assert refill is not None and (refill.language, refill.kind, refill.channel_id) == ("fr", "same_channel", 42)
    assert refill_same_channel(placed(es="same_channel", fr="text_only"), 42) is None
    assert refill_same_channel(placed(es="sibling"), 42) is None


def test_a_lost_speaker_is_given_a_moment_then_rejoins_and_after_repeated_losses_falls_back():
    watch = SpeakerWatch(grace_s=1.0, max_rejoins=2, window_s=60.0)
    assert watch.observe("es", 10, 10, now=0.0) is Verdict.OK
    assert watch.observe("es", 10, None, now=1.0) is Verdict.WAIT  # discord.py may be reconnecting
    assert watch.observe("es", 10, None, now=1.5) is Verdict.WAIT
    assert watch.observe("es", 10, 10, now=1.8) is Verdict.OK  # it was: no rejoin
    assert watch.observe("es", 10, None, now=2.0) is Verdict.WAIT
    assert watch.observe("es", 10, None, now=3.0) is Verdict.REJOIN
    watch.rejoined("es", now=3.2)
    assert watch.observe("es", 10, 11, now=5.0) is Verdict.WAIT  # moved elsewhere
    assert watch.observe("es", 10, 11, now=6.0) is Verdict.REJOIN
    watch.rejoined("es", now=6.1)
    assert watch.observe("es", 10, None, now=8.0) is Verdict.WAIT
    assert watch.observe("es", 10, None, now=9.0) is Verdict.FALL_BACK  # two rejoins within the window
    assert watch.observe("es", 10, None, now=70.0) is Verdict.REJOIN  # the window has passed
    assert watch.observe("fr", 11, None, now=9.0) is Verdict.WAIT  # languages are watched apart


def test_a_speaker_still_in_its_channel_but_disconnected_is_left_to_discord_py_longer():
    watch = SpeakerWatch(grace_s=1.0, reconnect_grace_s=6.0)  # (2 s by default)
    assert watch.observe("es", 10, None, now=0.0, reconnecting=True) is Verdict.WAIT  # a 4015 resume, say
    assert watch.observe("es", 10, None, now=5.0, reconnecting=True) is Verdict.WAIT
    assert watch.observe("es", 10, 10, now=5.5) is Verdict.OK  # it came back by itself
    assert watch.observe("es", 10, None, now=6.0, reconnecting=True) is Verdict.WAIT
    assert watch.observe("es", 10, None, now=12.0, reconnecting=True) is Verdict.REJOIN  # it did not


def test_changes_are_told_in_one_short_line():
    assert lost_why(None) == "was disconnected" and lost_why(5) == "was moved to <#5>"
    lines = [
        rejoined_line("es", 10, lost_why(None)),
        fell_back_line("es", 10, lost_why(None), Placement("es", "same_channel", 42)),
        fell_back_line("es", 10, lost_why(5), Placement("es", "text_only", None)),
        moved_line("fr", Placement("fr", "sibling", 11)),
    ]
    assert lines[0] == "🔁 The **es** speaker bot was disconnected; it is back in <#10>."
    assert lines[1].endswith("es now plays in this voice channel.")
    assert lines[2].endswith("es is text only now.") and "moved to <#5>" in lines[2]
    assert lines[3] == "🔊 A speaker bot is free: **fr** now plays in <#11>."
    assert all("\n" not in line and len(line) < 200 for line in lines)
