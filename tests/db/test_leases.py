from __future__ import annotations

import asyncio

from bot.db import Database, leases
from tests.fakes.database import start_row

GUILD = 2_100_000_000_000_000_001
OTHER_GUILD = 2_100_000_000_000_000_002
SPEAKERS = [2_200_000_000_000_000_000 + n for n in range(1, 6)]
HERE = "host-a:1"


async def start(db, channel, guild=GUILD, instance=HERE):
    async with db.session() as s:
        return await start_row(s, guild=guild, channel=channel, instance=instance, targets=("es", "fr"))


async def acquire(db, *, channel, language="es", session_id=None, guild=GUILD, candidates=SPEAKERS, instance=HERE):
    async with db.session() as s:
        return await leases.acquire_speaker(
            s,
            candidates=candidates,
            guild_id=guild,
            channel_id=channel,
            language=language,
            instance_id=instance,
            session_id=session_id,
        )


async def test_first_free_candidate_is_leased_with_its_details(db):
    first = await acquire(db, channel=10)
    second = await acquire(db, channel=11, language="fr")
    assert (first.speaker_user_id, second.speaker_user_id) == (SPEAKERS[0], SPEAKERS[1])
    assert (first.guild_id, first.channel_id, first.language, first.instance_id) == (GUILD, 10, "es", HERE)
    assert first.leased_at.tzinfo is not None
    async with db.session() as s:
        assert await leases.busy_speakers(s, GUILD) == {SPEAKERS[0], SPEAKERS[1]}


async def test_none_when_every_candidate_is_busy(db):
    for channel in range(len(SPEAKERS)):
        assert await acquire(db, channel=100 + channel) is not None
    assert await acquire(db, channel=200) is None


async def test_a_channel_gets_one_speaker(db):
    assert await acquire(db, channel=10) is not None
    assert await acquire(db, channel=10, language="fr") is None
    async with db.session() as s:
        assert await leases.busy_speakers(s, GUILD) == {SPEAKERS[0]}


async def test_same_speaker_may_serve_another_guild(db):
    here = await acquire(db, channel=10, candidates=SPEAKERS[:1])
    there = await acquire(db, channel=20, guild=OTHER_GUILD, candidates=SPEAKERS[:1])
    assert here.speaker_user_id == there.speaker_user_id == SPEAKERS[0]
    assert await acquire(db, channel=11, candidates=SPEAKERS[:1]) is None


async def test_retry_for_the_same_session_and_language_returns_the_lease(db):
    session = await start(db, channel=1)
    lease = await acquire(db, channel=10, session_id=session.id)
    again = await acquire(db, channel=10, session_id=session.id)
    assert again.id == lease.id
    # The same language into another channel would be a second speaker for one language: refused.
    assert await acquire(db, channel=12, session_id=session.id) is None


async def test_release_one_by_speaker_by_session_and_by_instance(db):
    s1 = await start(db, channel=1)
    s2 = await start(db, channel=2, instance="host-b:1")
    a = await acquire(db, channel=10, session_id=s1.id)
    await acquire(db, channel=11, language="fr", session_id=s1.id)
    c = await acquire(db, channel=12, session_id=s2.id, instance="host-b:1")
    await acquire(db, channel=13, language="fr", session_id=s2.id, instance="host-b:1")
    async with db.session() as s:
        assert [lease.language for lease in await leases.leases_of_session(s, s1.id)] == ["es", "fr"]
        assert await leases.release_speaker(s, a.speaker_user_id, GUILD) is True
        assert await leases.release_speaker(s, a.speaker_user_id, GUILD) is False
        assert await leases.release_session_leases(s, s1.id) == 1
        assert await leases.release_lease(s, c.id) is True
        assert await leases.release_instance_leases(s, "host-b:1") == 1
        assert await leases.busy_speakers(s, GUILD) == set()
    # Released speakers are leasable again.
    assert (await acquire(db, channel=14)).speaker_user_id == SPEAKERS[0]


async def test_concurrent_acquisition_never_shares_a_speaker(db, isolated_url):
    """Twenty sessions race for five speakers through two engines (as two processes would)."""
    other_process = Database(isolated_url)
    try:
        session_rows = [await start(db, channel=1000 + n) for n in range(20)]

        async def race(n: int):
            database = db if n % 2 else other_process
            candidates = SPEAKERS[n % 5 :] + SPEAKERS[: n % 5]  # different preference orders
            return await acquire(database, channel=3000 + n, session_id=session_rows[n].id, candidates=candidates)

        results = await asyncio.gather(*(race(n) for n in range(20)))
    finally:
        await other_process.close()
    won = [lease for lease in results if lease is not None]
    assert sorted(lease.speaker_user_id for lease in won) == SPEAKERS
    async with db.session() as s:
        assert await leases.busy_speakers(s, GUILD) == set(SPEAKERS)
