"""Recovery on shard 1 of 2, against the Palabra emulator and a real database: it ends and cleans up only
what a dead process left on its own shard; a live session on shard 0 (another process) keeps its row and
its Palabra session, even through the sweep of untracked Palabra sessions."""

from __future__ import annotations

from bot.db import sessions as db_sessions
from bot.interpretation.palabra_sessions import PalabraSessions
from bot.interpretation.recovery import MAX_LINEAGE, CrashedSession, Recovery
from bot.metrics import Metrics
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import serve
from bot.palabra.rest import PalabraRest
from bot.shards import ShardPlan
from tests.fakes import secrets
from tests.interpretation.conftest import emulator_config

GUILD_ON_0 = (7_000_000 << 22) | 1
GUILD_ON_1 = (7_000_001 << 22) | 1
ME = "host-b:2:run2"


async def live_session(db, rest, guild: int, channel: int, instance: str) -> tuple[int, str]:
    palabra_id = (await rest.create_session()).id
    async with db.session() as s:
        row = await db_sessions.start_session(
            s,
            guild_id=guild,
            source_channel_id=channel,
            source_language="en",
            target_languages=["es"],
            instance_id=instance,
        )
        await db_sessions.add_palabra_session_id(s, row.id, palabra_id)
        return row.id, palabra_id


async def test_recovery_on_one_shard_leaves_the_other_shard_alone(db):
    credentials = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)
    async with serve(emulator_config()) as emulator, PalabraRest(credentials, emulator.base_url) as rest:
        other_shard = await live_session(db, rest, GUILD_ON_0, 10, "host-a:1:run1")  # alive elsewhere
        left_by_dead = await live_session(db, rest, GUILD_ON_1, 20, "host-b:1:run1")  # our shard, dead owner
        mine = await live_session(db, rest, GUILD_ON_1, 30, ME)  # started by this process already
        recovery = Recovery(db, PalabraSessions(rest, db, Metrics()), ME, ShardPlan((1,), 2), lists_sessions=True)

        crashed = await recovery.close_crashed()
        await recovery.delete_untracked([mine[1]])

        assert [(row.id, row.guild_id, row.previous_instance_id) for row in crashed] == [
            (left_by_dead[0], GUILD_ON_1, "host-b:1:run1")
        ]
        assert set(emulator.state.sessions) == {other_shard[1], mine[1]}
        async with db.session() as s:
            live = {row.id for row in await db_sessions.list_active_sessions(s)}
        assert live == {other_shard[0], mine[0]}


def test_a_resumed_session_continues_the_crashed_one_and_what_it_continued_within_a_bound():
    def crashed(session_id: int, continues: tuple[int, ...]) -> CrashedSession:
        return CrashedSession(session_id, 1, "en", ("es",), None, (), continues=continues)

    assert crashed(5, ()).lineage == (5,)
    assert crashed(9, (5,)).lineage == (9, 5)  # resumed twice: links of both sessions follow the third
    long = crashed(100, tuple(range(99, 0, -1))).lineage
    assert len(long) == MAX_LINEAGE and long[:3] == (100, 99, 98)  # the newest kept
