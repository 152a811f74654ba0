"""A whole interpretation world on loopback: the fake Discord (listener + two speaker bots, DAVE voice),
the Palabra emulator (app credentials, so sessions live in its session storage), a migrated database
(SQLite and PostgreSQL) and the manager under test."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from bot.db import Database, guilds, upgrade_to_head
from bot.interpretation.manager import InterpretationManager
from bot.interpretation.session import SessionOptions
from bot.metrics import Metrics
from bot.palabra.credentials import Credentials
from bot.palabra.emulator.app import RunningEmulator, serve
from bot.palabra.emulator.config import EmulatorConfig
from bot.palabra.rest import PalabraRest
from bot.services import Core, Options, Services
from bot.settings import load_settings
from bot.voice import adapter
from bot.voice.speakers import SpeakerPool, start_speakers, stop_speakers
from tests.fakes import secrets
from tests.fakes.audio import SPEECH_A, decode, mono
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.server import FakeDiscord
from tests.fakes.waiting import wait_until


@dataclass
class World:
    fake: FakeDiscord
    emulator: RunningEmulator
    database: Database
    services: Services
    listener: Any
    speakers: list[Any]
    pool: SpeakerPool
    manager: InterpretationManager
    metrics: Metrics
    late_tokens: list[str] = field(default_factory=list)
    speaker_tasks: list[Any] = field(default_factory=list)

    async def start_speakers(self) -> None:
        """Log the speakers not yet started in, as `run` does (into the pool, without waiting)."""
        tokens, self.late_tokens = self.late_tokens, []
        before = list(self.pool.speakers)
        self.speaker_tasks += await start_speakers(tokens, self.pool, client_kwargs={"guild_ready_timeout": 0.1})
        self.speakers += [s for s in self.pool.speakers if s not in before]

    @property
    def guild(self):
        return self.listener.get_guild(self.fake.guild.id)

    def channel(self, name: str):
        return self.listener.get_channel(self.fake.channel(name).id)

    async def configure(self, *, source="en", targets=("es", "fr"), siblings=None, **settings) -> None:
        async with self.database.session() as s:
            await guilds.set_languages(s, self.fake.guild.id, source, list(targets))
            for language, channel_name in (siblings or {}).items():
                await guilds.set_language_channel(s, self.fake.guild.id, language, self.fake.channel(channel_name).id)
            for name, value in settings.items():
                await guilds.update_guild_setting(s, self.fake.guild.id, name, value)


def emulator_config(realism: int | None = None) -> EmulatorConfig:
    return EmulatorConfig(
        client_credentials={secrets.PALABRA_CLIENT_ID: secrets.PALABRA_CLIENT_SECRET}, **_realism(realism)
    )


def _realism(seed: int | None) -> dict[str, int]:
    """The peers' realism keyword, given only when a seed is (so the deterministic peers need nothing)."""
    return {"realism": seed} if seed is not None else {}


@contextlib.asynccontextmanager
async def world_on(
    database: Database,
    *,
    speaker_count: int = 2,
    partial_interval_s: float = 0.5,
    speakers: str = "ready",
    realism: int | None = None,
    idle_pause_s: float | None = None,
):
    """`speakers`: "ready" (logged in before the manager exists), "starting" (logging in as the world
    is handed over, as in `run`) or "later" (not started: `world.start_speakers()` when the test says).
    `idle_pause_s`: PALABRA_IDLE_PAUSE_S (None: the default)."""
    async with FakeDiscord(**_realism(realism)) as fake, serve(emulator_config(realism)) as emulator:
        settings = load_settings(
            palabra_client_id=secrets.PALABRA_CLIENT_ID,
            palabra_client_secret=secrets.PALABRA_CLIENT_SECRET,
            palabra_api_url=emulator.base_url,
            discord_api_base=fake.api_base,
            http_port=0,
            **({} if idle_pause_s is None else {"palabra_idle_pause_s": idle_pause_s}),
        )
        credentials = Credentials.app(secrets.PALABRA_CLIENT_ID, secrets.PALABRA_CLIENT_SECRET)
        ready_now = speaker_count if speakers == "ready" else 0
        tokens = [secrets.DISCORD_TOKEN, *secrets.SPEAKER_TOKENS[:ready_now]]
        async with PalabraRest(credentials, emulator.base_url) as rest, running_clients(fake, tokens) as clients:
            metrics = Metrics()
            options = Options(
                partial_interval_s=partial_interval_s,
                session=SessionOptions(tail_silence_s=1.0, drain_timeout_s=10.0),
            )
            core = Core(settings, database, credentials, rest, metrics, options)
            pool = SpeakerPool(clients[1:])
            manager = InterpretationManager(core, clients[0], pool)
            services = Services(core, interpretation=manager)
            world = World(fake, emulator, database, services, clients[0], clients[1:], pool, manager, metrics)
            world.late_tokens = list(secrets.SPEAKER_TOKENS[ready_now:speaker_count])
            if speakers == "starting":
                await world.start_speakers()
            try:
                yield world
            finally:
                await manager.close()
                late = [c for c in [*world.pool.speakers, *world.pool.failed_speakers] if c not in clients]
                await stop_speakers(SpeakerPool(late), world.speaker_tasks)


async def wait_for(predicate, timeout=15.0, what="condition"):
    """`tests.fakes.waiting.wait_until` with this package's longer default and coarser poll."""
    await wait_until(predicate, timeout=timeout, what=what, interval=0.05)


def listener_dave_ready(manager: InterpretationManager, members: int) -> bool:
    for running in manager.sessions.values():
        session, version = adapter.dave_state(running.live.parts.voice_client)
        return version > 0 and session is not None and session.ready and len(session.get_user_ids()) == members
    return False


@pytest.fixture
def postgres_or_sqlite(database_url):
    return database_url


# --- sessions with a Spanish listener in the sibling channel (availability and resume tests) ---------
RATE = 48000
SIBLINGS = {"es": "Voice B", "fr": "Voice C"}


@pytest.fixture
async def sqlite_db(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    await upgrade_to_head(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.close()


def speech(seconds: float) -> bytes:
    """The first `seconds` of the speech fixture, 48 kHz stereo as Discord clients send it."""
    return decode(SPEECH_A, rate=RATE, channels=2)[: int(seconds * RATE) * 4]


def rms(pcm: bytes) -> float:
    """RMS of 48 kHz stereo s16le (full scale 1.0)."""
    signal = mono(pcm, 2)
    return float(np.sqrt(np.mean(signal**2))) if len(signal) else 0.0


async def start_session(world: World, targets: tuple[str, ...] = ("es", "fr")):
    """Alice starts a session from Voice A, each target language configured with its sibling channel."""
    await world.configure(targets=targets, siblings={t: SIBLINGS[t] for t in targets})
    alice = await world.fake.add_user("Alice")
    await alice.join("Voice A")
    report = await world.manager.start(
        guild=world.guild, voice_channel=world.channel("Voice A"), requested_by=world.guild.get_member(alice.id)
    )
    return alice, report


async def spanish_session(world: World):
    """Eva listens in Voice B; Alice starts a Spanish-only session. Returns (alice, eva, the es lease)
    once both hear the voice channel's DAVE group."""
    eva = await world.fake.add_user("Eva")
    await eva.join("Voice B")
    alice, _report = await start_session(world, targets=("es",))
    [lease] = world.pool.leases()
    await alice.wait_dave_ready(members=2, timeout=20)
    await eva.wait_dave_ready(members=2, timeout=20)
    return alice, eva, lease


async def until_heard(listener, speaker_id: int, what: str = "Spanish", timeout: float = 20) -> None:
    """Until the last 200 ms `listener` heard from `speaker_id` are audible."""
    await wait_for(lambda: rms(listener.heard(speaker_id)[-RATE * 4 // 5 :]) > 0.01, timeout=timeout, what=what)
