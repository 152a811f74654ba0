from __future__ import annotations

from bot.palabra import languages
from tests.cogs.conftest import ephemeral


async def test_languages_lists_every_source_and_target_within_discord_limits(sqlite_harness):
    h = sqlite_harness
    user = await h.fake.add_user("Reader")
    record = await h.command(user, "languages")
    assert record.response_type == 4 and ephemeral(record)
    embed = record.responses[0]["data"]["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    source_field = next(v for k, v in fields.items() if k.startswith("Source languages"))
    target_field = next(v for k, v in fields.items() if k.startswith("Target languages"))
    assert {c.strip("`") for c in source_field.split()} == set(languages.SOURCE_LANGUAGES) - {"auto"}
    assert {c.strip("`") for c in target_field.split()} == set(languages.TARGET_LANGUAGES)
    assert all(len(v) <= 1024 for v in fields.values())
    total = len(embed["title"]) + len(embed["description"]) + sum(len(k) + len(v) for k, v in fields.items())
    assert total <= 6000
    assert "auto" in record.text()
