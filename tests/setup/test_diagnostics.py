"""The /setup check's Palabra and database checks against real peers: a closed port, a read-only SQLite."""

from __future__ import annotations

from bot.db import Database, guilds, upgrade_to_head
from bot.palabra.credentials import Credentials
from bot.palabra.rest import PalabraRest
from bot.setup.diagnostics import database_findings, palabra_findings
from tests.fakes import secrets


async def test_an_unreachable_palabra_is_told_apart_from_rejected_credentials():
    url = "http://127.0.0.1:9"  # nothing listens there
    async with PalabraRest(Credentials.from_api_key(secrets.PALABRA_API_KEY), url, max_retries=0) as rest:
        (finding,) = await palabra_findings(rest, url)
    assert finding.level == "problem"
    assert finding.text.startswith(f"Palabra is unreachable at {url}: ")
    assert finding.text.endswith("Fix: check PALABRA_API_URL and the network.")
    assert secrets.PALABRA_API_KEY not in finding.text
    (missing,) = await palabra_findings(None, url)
    assert missing.text.startswith("Palabra credentials are not set.")


async def test_a_read_only_database_is_a_problem_and_a_writable_one_is_fine(tmp_path):
    path = tmp_path / "bot.db"
    await upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    async with Database(f"sqlite+aiosqlite:///{path}") as writable:
        async with writable.session() as s:
            await guilds.set_languages(s, 42, "en", ["es"])
        assert [f.level for f in await database_findings(writable, 42)] == ["ok"]
        async with writable.session() as s:  # the check's write was rolled back
            assert (await guilds.get_guild_settings(s, 42)).target_languages == ["es"]
    async with Database(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true") as read_only:
        (finding,) = await database_findings(read_only, 42)
    assert finding.level == "problem" and finding.text.startswith("The database cannot be written (")
    assert "readonly" in finding.text
