"""The cogs under test: an unmodified discord.py client (InterpreterBot) connected to the fake Discord,
a migrated database of the test's own, and slash commands sent as real INTERACTION_CREATE payloads.

`harness` runs on both databases (SQLite and PostgreSQL); `sqlite_harness` on SQLite only, for tests
the database does not matter to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot.broadcasts.service import BroadcastService
from bot.client import InterpreterBot
from bot.db import Database, upgrade_to_head
from bot.interpretation.errors import NoActiveSession
from bot.interpretation.manager import InterpretationManager, Placement, SessionStatus, StartReport, StopReport
from bot.services import Core, Options, Services
from bot.settings import Settings
from bot.shards import ShardPlan
from tests.fakes import secrets
from tests.fakes.discord.clients import running_clients
from tests.fakes.discord.model import Role, snowflake
from tests.fakes.discord.rest import InteractionRecord
from tests.fakes.discord.server import FakeDiscord

EPHEMERAL = 64


@dataclass
class RecordingManager:
    """Stand-in for the interpretation manager (its start is not built yet): keeps the contract's
    signatures and return types, records every call, and raises `fail_with` when set."""

    fail_with: BaseException | None = None
    calls: list[tuple[str, dict]] = field(default_factory=list)
    sessions: list[SessionStatus] = field(default_factory=list)

    def _record(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    async def start(self, *, guild, voice_channel, requested_by, source=None, targets=None) -> StartReport:
        self._record(
            "start", guild=guild, voice_channel=voice_channel, requested_by=requested_by, source=source, targets=targets
        )
        targets = targets or ["es"]
        placements = {t: Placement(t, "text_only", None, "no speaker bot is free") for t in targets}
        placements[targets[0]] = Placement(targets[0], "sibling", voice_channel.id + 1, None)
        return StartReport(7, source or "auto", targets, placements, voice_channel.id, ["Palabra said hello"])

    async def stop(self, *, guild_id, channel_id=None, reason="stopped") -> StopReport:
        self._record("stop", guild_id=guild_id, channel_id=channel_id, reason=reason)
        if not self.sessions:
            raise NoActiveSession()
        return StopReport(self.sessions[0].session_id, 125.0, 3, None)

    def status(self, guild_id: int) -> list[SessionStatus]:
        self._record("status", guild_id=guild_id)
        return [s for s in self.sessions if s.guild_id == guild_id]

    async def set_user_opted_out(self, guild_id, user_id, opted_out) -> None:
        self._record("set_user_opted_out", guild_id=guild_id, user_id=user_id, opted_out=opted_out)


@dataclass
class Harness:
    fake: FakeDiscord
    client: InterpreterBot
    services: Services
    manager: Any
    overlay: Any = None  # tests.overlay.conftest.Served, when running_world was asked for the overlay

    @property
    def bot_account(self):
        return self.fake.bot()

    async def command(
        self, user, name: str, subcommand: str | None = None, *, in_channel="general", timeout: float = 10.0, **options
    ) -> InteractionRecord:
        """Send `/name [subcommand] options…` as `user` from `in_channel` and wait for the bot's answer."""
        record = await self.fake.slash_command(
            self.bot_account, user, in_channel, name, subcommand=subcommand, options=options
        )
        await self.fake.wait_for_response(record, timeout)
        await self.settled(record)
        return record

    async def send(self, payload: dict, timeout: float = 10.0) -> InteractionRecord:
        """Dispatch a hand-edited interaction payload (for option kinds the fake does not build)."""
        record = InteractionRecord(
            int(payload["id"]), payload["token"], self.bot_account.application_id, int(payload["channel_id"]), payload
        )
        self.fake.rest.interactions[record.id] = record
        await self.fake.dispatch(self.bot_account, "INTERACTION_CREATE", payload)
        await self.fake.wait_for_response(record, timeout)
        await self.settled(record)
        return record

    def payload(
        self,
        user,
        name: str,
        subcommand: str | None = None,
        *,
        in_channel="general",
        focused: str | None = None,
        **options,
    ) -> dict:
        """The INTERACTION_CREATE payload; with `focused`, an autocomplete interaction for that option."""
        return self.fake.interaction_payload(
            bot=self.bot_account,
            user=user,
            channel=in_channel,
            name=name,
            subcommand=subcommand,
            options=options,
            focused=focused,
        )

    async def settled(self, record: InteractionRecord, timeout: float = 10.0) -> None:
        """A deferred answer is complete once a followup arrived (or the placeholder was deleted)."""
        if record.response_type != 5:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not record.followups:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("deferred interaction got no followup")
            await asyncio.sleep(0.01)

    async def add_role(self, name: str, permissions: int = 0) -> Role:
        """A new role, announced to the bot as Discord does (GUILD_ROLE_CREATE)."""
        role = Role(snowflake(), name, permissions, len(self.fake.guild.roles))
        self.fake.guild.roles[role.id] = role
        await self.fake.dispatch(
            self.bot_account, "GUILD_ROLE_CREATE", {"guild_id": str(self.fake.guild.id), "role": role.payload()}
        )
        await wait_until(lambda: self.client.get_guild(self.fake.guild.id).get_role(role.id) is not None)
        return role

    async def join_voice(self, user, channel: str) -> None:
        await user.join(channel)
        channel_id = self.fake.channel(channel).id
        guild = self.client.get_guild(self.fake.guild.id)
        await wait_until(
            lambda: (
                (state := guild._voice_state_for(user.id)) is not None
                and state.channel
                and state.channel.id == channel_id
            )
        )


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def shown(record: InteractionRecord) -> str:
    """The text of the message the user ended up with: the answer, or the last followup after a deferral."""
    message = record.followups[-1].data if record.response_type == 5 else record.responses[0].get("data") or {}
    parts = [message.get("content") or ""]
    for embed in message.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
    return "\n".join(p for p in parts if p)


def ephemeral(record: InteractionRecord) -> bool:
    """Whether what the user saw last was private: the response, or the followup after a deferral."""
    if record.response_type == 5:
        return bool(int(record.followups[-1].flags) & EPHEMERAL)
    return record.ephemeral


@contextlib.asynccontextmanager
async def running_harness(database_url: str, manager: Any = None, *, real_manager: bool = False):
    """The listener bot with its cogs; `manager` stands in for the interpretation manager, or with
    `real_manager` the project's own is built around the client (without Palabra)."""
    await upgrade_to_head(database_url)
    database = Database(database_url)
    settings = Settings(_env_file=None, discord_token=secrets.DISCORD_TOKEN, database_url=database_url)
    core = Core(settings, database)

    def services_for(client: InterpreterBot) -> Services:
        interpretation = InterpretationManager(core, client) if real_manager else manager
        return Services(core, interpretation=interpretation, broadcasts=BroadcastService(core))

    try:
        async with FakeDiscord() as fake:
            factory = lambda: InterpreterBot(services_for, shards=ShardPlan.of(settings), guild_ready_timeout=0.1)  # noqa: E731
            async with running_clients(fake, [secrets.DISCORD_TOKEN], factory=factory) as (client,):
                await wait_until(lambda: fake.commands(fake.bot()), timeout=10)
                yield Harness(fake, client, client.services, client.services.interpretation)
    finally:
        await database.close()


@pytest.fixture
def manager() -> RecordingManager:
    return RecordingManager()


@pytest.fixture
async def harness(isolated_url, manager):
    async with running_harness(isolated_url, manager) as h:
        yield h


@pytest.fixture
async def sqlite_harness(tmp_path, manager):
    async with running_harness(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", manager) as h:
        yield h


@contextlib.asynccontextmanager
async def running_world(
    database_url: str,
    *,
    speaker_tokens: Sequence[str] = tuple(secrets.SPEAKER_TOKENS),
    not_in_server: Sequence[str] = (),
    palabra_secret: str = secrets.PALABRA_CLIENT_SECRET,
    prepare: Callable[[FakeDiscord], Awaitable[None]] | None = None,
    overlay_limits: Any = None,
):
    """The bot as `run` builds it, against the fake Discord and the Palabra emulator: the listener with the
    cogs and the real interpretation manager, speaker bots logged in the product's way (start_speakers),
    SPEAKER_TOKENS and Palabra credentials in its settings. `not_in_server` tokens' bots are not members of
    the guild; `prepare(fake)` shapes the world before any client connects. With `overlay_limits` (a
    bot.overlay.web.StreamLimits) the caption overlay is served on loopback as `run` serves it."""
    from bot.interpretation.session import SessionOptions
    from bot.palabra.credentials import Credentials
    from bot.palabra.emulator.app import serve
    from bot.palabra.rest import PalabraRest
    from bot.settings import load_settings
    from bot.voice.speakers import SpeakerPool, start_speakers, stop_speakers
    from tests.interpretation.conftest import emulator_config

    await upgrade_to_head(database_url)
    database = Database(database_url)
    try:
        async with FakeDiscord() as fake, serve(emulator_config()) as emulator:
            for token in not_in_server:
                fake.remove_member(fake.bot(token))
            if prepare is not None:
                await prepare(fake)
            settings = load_settings(
                discord_token=secrets.DISCORD_TOKEN,
                speaker_tokens=",".join(speaker_tokens),
                palabra_client_id=secrets.PALABRA_CLIENT_ID,
                palabra_client_secret=palabra_secret,
                palabra_api_url=emulator.base_url,
                discord_api_base=fake.api_base,
                database_url=database_url,
                http_port=0,
            )
            credentials = Credentials.app(secrets.PALABRA_CLIENT_ID, palabra_secret)
            async with (
                PalabraRest(credentials, emulator.base_url, max_retries=0) as rest,
                contextlib.AsyncExitStack() as stack,
            ):
                options = Options(session=SessionOptions(tail_silence_s=0.5, drain_timeout_s=5.0))
                core = Core(settings, database, credentials, rest, options=options)
                pool = SpeakerPool()
                built: list[InterpretationManager] = []
                served = None
                if overlay_limits is not None:
                    from tests.overlay.conftest import serving_the_bot_overlay

                    sessions = lambda: built[0].sessions.values() if built else ()  # noqa: E731
                    served = await stack.enter_async_context(
                        serving_the_bot_overlay(settings, database, sessions, overlay_limits)
                    )

                def services_for(client: InterpreterBot) -> Services:
                    built.append(InterpretationManager(core, client, pool))
                    overlay = served.overlay.service if served is not None else None
                    return Services(
                        core,
                        interpretation=built[-1],
                        broadcasts=BroadcastService(core),
                        speakers=pool,
                        overlay=overlay,
                    )

                factory = lambda: InterpreterBot(services_for, shards=ShardPlan.of(settings), guild_ready_timeout=0.1)  # noqa: E731
                async with running_clients(fake, [secrets.DISCORD_TOKEN], factory=factory) as (listener,):
                    tasks = await start_speakers(
                        list(speaker_tokens), pool, ready_timeout=10, client_kwargs={"guild_ready_timeout": 0.1}
                    )
                    await pool.wait_settled(10)  # they log in in the background, as in `run`
                    manager = listener.services.interpretation
                    assert isinstance(manager, InterpretationManager)
                    try:
                        await wait_until(lambda: fake.commands(fake.bot()), timeout=10)
                        yield Harness(fake, listener, listener.services, manager, served)
                    finally:
                        await manager.close()
                        await stop_speakers(pool, tasks)
    finally:
        await database.close()
