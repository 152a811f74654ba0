"""The database unreachable mid-session: transcript entries wait in the `TranscriptStore` and are all
written, in order, once it is back; the session itself carries on (transcripts posted, audio played).

The outage is real on PostgreSQL (the bot's connections go through a loopback proxy that is cut: open
connections reset, new ones refused) and a refused `session()` on SQLite (a file database cannot become
unreachable); time is compressed (a short outage, short retry delays)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import make_url

from bot.db import sessions as db_sessions
from bot.db import transcripts as db_transcripts
from bot.db.engine import Database
from bot.interpretation.store import FinalLine, TranscriptStore, Translation
from tests.fakes.audio import SPEECH_A, decode
from tests.fakes.database import FlakyDatabase
from tests.fakes.tcp_proxy import TcpProxy
from tests.interpretation.conftest import listener_dave_ready, wait_for, world_on

pytestmark = pytest.mark.timeout(120)
RATE = 48000


@dataclass
class Outage:
    """A database for the code under test whose network can be cut, and the way to cut and restore it."""

    database: Database
    proxy: TcpProxy | None = None

    async def cut(self) -> None:
        if self.proxy is not None:
            await self.proxy.cut()
        else:
            assert isinstance(self.database, FlakyDatabase)
            self.database.down = True

    async def restore(self) -> None:
        if self.proxy is not None:
            await self.proxy.restore()
        else:
            assert isinstance(self.database, FlakyDatabase)
            self.database.down = False


@contextlib.asynccontextmanager
async def outage_for(db: Database, url: str) -> AsyncIterator[Outage]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield Outage(FlakyDatabase(db))
        return
    async with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        proxied = Database(parsed.set(host="127.0.0.1", port=proxy.port))
        try:
            yield Outage(proxied, proxy)
        finally:
            await proxied.close()


async def new_session(db: Database) -> int:
    async with db.session() as s:
        row = await db_sessions.start_session(
            s, guild_id=1, source_channel_id=2, source_language="en", target_languages=["es", "fr"], instance_id="t"
        )
        return row.id


async def test_entries_wait_out_an_outage_and_none_is_lost(db, isolated_url):
    session_id = await new_session(db)
    loop = asyncio.get_running_loop()
    async with outage_for(db, isolated_url) as outage:
        store = TranscriptStore(outage.database, session_id, first_retry_s=0.05, max_retry_s=0.25)
        store.start()
        store.add(FinalLine("t0", "before the outage", 7, "en", {}, 0.0, 1.0))
        await wait_for(lambda: store.written == 1, what="the first line written")

        await outage.cut()
        during = [
            Translation("t1", "es", "[es] uno"),  # a translation before its transcript: merged later
            FinalLine("t1", "one", 7, "en", {}, 1.0, 2.0),
            FinalLine("t2", "two", 8, "en", {"es": "[es] dos"}, 2.0, 3.0),
            Translation("t2", "fr", "[fr] deux"),
            Translation("t0", "es", "[es] avant"),
        ]
        for entry in during:
            store.add(entry)
        await wait_for(lambda: store.retries >= 5, what="writes refused while the database is down")
        assert store.pending == len(during) and store.written == 1
        async with db.session() as s:  # the database itself is fine; the bot just cannot reach it
            assert [line.transcription_id for line in await db_transcripts.session_transcript(s, session_id)] == ["t0"]

        await outage.restore()
        restored_at = loop.time()
        await wait_for(lambda: store.pending == 0, timeout=15, what="the entries written after the outage")
        caught_up = loop.time() - restored_at
        await store.close(timeout=5)
    print(f"database outage: {store.retries} refused writes; all {len(during)} entries written {caught_up:.2f} s after")

    async with db.session() as s:
        lines = {line.transcription_id: line for line in await db_transcripts.session_transcript(s, session_id)}
    assert set(lines) == {"t0", "t1", "t2"} and store.written == 1 + len(during)
    assert lines["t0"].source_text == "before the outage" and lines["t0"].translations == {"es": "[es] avant"}
    assert lines["t1"].source_text == "one" and lines["t1"].translations == {"es": "[es] uno"}
    assert lines["t2"].translations == {"es": "[es] dos", "fr": "[fr] deux"} and lines["t2"].speaker_user_id == 8


async def test_a_store_closed_while_the_database_is_still_down_reports_what_it_lost(db, caplog):
    session_id = await new_session(db)
    flaky = FlakyDatabase(db)
    store = TranscriptStore(flaky, session_id, first_retry_s=0.05, max_retry_s=0.1)
    store.start()
    flaky.down = True
    store.add(FinalLine("t1", "lost", None))
    await wait_for(lambda: store.retries >= 1, what="a refused write")
    await store.close(timeout=0.3)
    assert store.pending == 1 and "1 transcript entries could not be stored" in caplog.text


async def test_interpretation_carries_on_while_the_database_is_down(db, isolated_url):
    async with outage_for(db, isolated_url) as outage, world_on(outage.database, speaker_count=0) as world:
        fake, manager = world.fake, world.manager
        await world.configure(targets=("es",))
        alice = await fake.add_user("Alice")
        await alice.join("Voice A")
        await manager.start(
            guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
        )
        await wait_for(lambda: listener_dave_ready(manager, 2), what="the listener's DAVE group")
        await alice.wait_dave_ready(members=2)
        [running] = manager.sessions.values()
        store = running.live.store
        assert store is not None

        await outage.cut()
        cut_at = asyncio.get_running_loop().time()
        await alice.speak(decode(SPEECH_A, rate=RATE, channels=2)[: 3 * RATE * 4] + bytes(int(1.5 * RATE) * 4))
        await wait_for(
            lambda: any("> **es**" in m.content for m in fake.messages("Voice A")),
            timeout=30,
            what="the transcript posted while the database is down",
        )
        listener_id = world.listener.user.id
        await wait_for(lambda: len(alice.heard(listener_id)) > RATE * 4, timeout=20, what="the translation played")
        assert store.pending >= 2 and store.retries >= 1 and manager.sessions  # waiting, not lost, still running
        outage_s = asyncio.get_running_loop().time() - cut_at

        await outage.restore()
        restored_at = asyncio.get_running_loop().time()
        await wait_for(lambda: store.pending == 0, timeout=15, what="the lines written once the database is back")
        caught_up = asyncio.get_running_loop().time() - restored_at
        stop = await manager.stop(guild_id=fake.guild.id)
    print(f"database down {outage_s:.1f} s mid-session: lines written {caught_up:.2f} s after it came back")
    async with db.session() as s:
        stored = await db_transcripts.session_transcript(s, stop.session_id)
    assert len(stored) == stop.transcript_lines >= 1
    assert all(line.speaker_user_id == alice.id and line.translations.get("es") for line in stored)
