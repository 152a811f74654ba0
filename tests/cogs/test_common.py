"""The shared parsing and formatting of the cogs (pure functions; the commands are tested end to end)."""

from __future__ import annotations

import pytest

from cogs import common


def test_targets_are_normalised_deduplicated_and_warned():
    choice = common.parse_targets("ES, pt_BR  fr,es, qq-zz")
    assert choice.codes == ["es", "pt-br", "fr", "qq-zz"]
    assert choice.warnings == ["target language 'qq-zz' is not in Palabra's known list; sending it anyway"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "Give at least one target language"),
        ("es, auto", "'auto' is only valid as a source language"),
        ("es, 1x", "target language '1x' is not a language code"),
        (",".join(f"x{chr(97 + i)}" for i in range(11)), "At most 10 target languages at once; you gave 11"),
    ],
)
def test_bad_targets_say_what_is_accepted(text, expected):
    with pytest.raises(common.CommandInputError) as caught:
        common.parse_targets(text)
    assert expected in caught.value.user_message


def test_source_accepts_auto_and_warns_on_unknown():
    assert common.parse_source("AUTO").codes == ["auto"]
    assert common.parse_source("xq").warnings == [
        "source language 'xq' is not in Palabra's known list; sending it anyway"
    ]
    with pytest.raises(common.CommandInputError, match="See `/languages`"):
        common.parse_source("en!")


async def test_targets_autocomplete_keeps_what_was_typed():
    choices = await common.targets_autocomplete(None, "es, de, f")
    values = [c.value for c in choices]
    assert values[:3] == ["es, de, fi", "es, de, fil", "es, de, fr"]
    assert all(v.startswith("es, de, ") and len(v) <= 100 for v in values)
    assert "es, de, es" not in [c.value for c in await common.targets_autocomplete(None, "es, de, e")]


async def test_autocomplete_prefers_prefix_matches_and_caps_at_25():
    values = [c.value for c in await common.target_autocomplete(None, "us")]
    assert values == ["en-us"]
    assert len(await common.source_autocomplete(None, "")) == 25


def test_durations_and_warnings_read_well():
    assert [common.duration(s) for s in (None, 5, 65, 3671)] == ["—", "5s", "1m 05s", "1h 01m"]
    text = common.with_warnings("done", ["a", "a", "", "b"])
    assert text == "done\n⚠️ a\n⚠️ b"
    assert len(common.with_warnings("x" * 3000, [])) == 2000
