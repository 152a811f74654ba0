"""How much a live session writes to the database (the figure docs/scaling.md uses): one session with two
target languages and continuous speech, every INSERT/UPDATE/DELETE and write transaction counted at the
driver. The bound checked: per utterance one transcript line and one merge per translation, no more —
the heartbeat is per process (one UPDATE for all its sessions), so it is not a per-session cost."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest
from sqlalchemy import event

from bot.db import transcripts as db_transcripts
from tests.fakes.audio import SPEECH_A, SPEECH_B, decode
from tests.fakes.waiting import wait_until
from tests.interpretation.conftest import listener_dave_ready, wait_for, world_on

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

log = logging.getLogger(__name__)
TARGETS = ("es", "fr")
WRITES = ("INSERT", "UPDATE", "DELETE")


class WriteCounter:
    """Write statements by (verb, table) and committed transactions that wrote, on one engine."""

    def __init__(self, engine) -> None:
        self.statements: Counter[tuple[str, str]] = Counter()
        self.transactions = 0
        self._dirty: set[int] = set()
        event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        event.listen(engine.sync_engine, "commit", self._commit)

    def _statement(self, connection, _cursor, statement, _parameters, _context, _many) -> None:
        words = statement.split()
        verb = words[0].upper() if words else ""
        if verb in WRITES:
            table = words[2] if verb in ("INSERT", "DELETE") else words[1]
            self.statements[(verb, table.strip('"'))] += 1
            self._dirty.add(id(connection))

    def _commit(self, connection) -> None:
        if id(connection) in self._dirty:
            self._dirty.discard(id(connection))
            self.transactions += 1

    def reset(self) -> None:
        self.statements.clear()
        self.transactions = 0

    def total(self) -> int:
        return sum(self.statements.values())


async def test_a_speaking_session_writes_one_line_and_one_merge_per_translation_per_utterance(db):
    counter = WriteCounter(db.engine)
    async with world_on(db) as world:
        await world.configure(targets=TARGETS, siblings={"es": "Voice B", "fr": "Voice C"})
        alice = await world.fake.add_user("Alice")
        await alice.join("Voice A")
        owner = world.guild.get_member(alice.id)
        source = world.channel("Voice A")
        report = await world.manager.start(guild=world.guild, voice_channel=source, requested_by=owner)
        await wait_for(lambda: listener_dave_ready(world.manager, 2), what="the listener's DAVE group")
        speech = b"".join(decode(path, rate=48000, channels=2) for path in (SPEECH_A, SPEECH_B, SPEECH_A, SPEECH_B))
        counter.reset()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await alice.speak(speech + bytes(48000 * 4 * 2))

        async def stored():
            async with db.session() as s:
                return await db_transcripts.session_transcript(s, report.session_id)

        lines: list = []

        async def all_translated() -> bool:
            lines[:] = await stored()
            return bool(lines) and all(set(line.translations) == set(TARGETS) for line in lines)

        await wait_until(all_translated, timeout=30, what="every transcript line stored, translated", interval=0.2)
        minutes = (loop.time() - started) / 60
        lines_written = counter.statements[("INSERT", "transcript_lines")]
        merges = counter.statements[("UPDATE", "transcript_lines")]
        log.warning(
            "write load: %d utterances in %.2f min: %d write statements (%s), %d write transactions; "
            "%.1f statements/min, %.1f transactions/min",
            len(lines),
            minutes,
            counter.total(),
            dict(counter.statements),
            counter.transactions,
            counter.total() / minutes,
            counter.transactions / minutes,
        )
        assert len(lines) >= 4  # four spoken fixtures, at least one utterance each
        assert lines_written <= len(lines) * (1 + len(TARGETS))  # an insert-if-missing per final and per translation
        assert merges <= len(lines) * (1 + len(TARGETS))
        assert counter.transactions <= len(lines) * (1 + len(TARGETS)) + 2  # + the manager's heartbeats
        await world.manager.stop(guild_id=world.guild.id)
