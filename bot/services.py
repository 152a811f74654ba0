"""The typed composition root: what the cogs and the domain layers share, all built by `bot.app` at
start-up (tests build the same around the fake Discord and the emulator).

`Core` is the infrastructure every service is built on; `Services` adds the domain services the cogs
call. Cogs reach it as `self.bot.services`. The interpretation manager needs the listener client, and
the client carries the services, so `InterpreterBot` takes a function that builds the services for it
(see `bot.app.App.start`): the graph is built once, never completed later by mutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.broadcasts.poller import DEFAULT_INTERVAL_S as DEFAULT_BROADCAST_POLL_S
from bot.interpretation.session import SessionOptions
from bot.metrics import Metrics

if TYPE_CHECKING:
    import discord

    from bot.broadcasts.service import BroadcastService
    from bot.db.engine import Database
    from bot.interpretation.reports import SessionStatus, StartReport, StopReport
    from bot.overlay.service import OverlayService
    from bot.palabra.credentials import Credentials
    from bot.palabra.rest import PalabraRest
    from bot.settings import Settings
    from bot.voice.speakers import SpeakerPool


@dataclass(frozen=True)
class Options:
    """How the services behave where the settings are silent (tests shorten the waits)."""

    instance_id: str | None = None  # this process's owner id in the database; None: host:pid
    partial_interval_s: float = 1.0  # how often a partial transcript message is edited
    session: SessionOptions = field(default_factory=SessionOptions)
    broadcast_poll_interval_s: float = DEFAULT_BROADCAST_POLL_S  # <= 0 turns the broadcast poller off


@dataclass(frozen=True)
class Core:
    settings: Settings
    database: Database
    credentials: Credentials | None = None
    palabra: PalabraRest | None = None
    metrics: Metrics = field(default_factory=Metrics)
    options: Options = field(default_factory=Options)


class Interpretation(Protocol):
    """What the cogs call on the interpretation layer (bot.interpretation.manager.InterpretationManager)."""

    async def start(
        self,
        *,
        guild: discord.Guild,
        voice_channel: discord.VoiceChannel | discord.StageChannel | None,
        requested_by: discord.Member | discord.User | None,
        source: str | None = None,
        targets: list[str] | None = None,
    ) -> StartReport: ...

    async def stop(self, *, guild_id: int, channel_id: int | None = None, reason: str = "stopped") -> StopReport: ...

    def status(self, guild_id: int) -> list[SessionStatus]: ...

    async def set_user_opted_out(self, guild_id: int | None, user_id: int, opted_out: bool) -> None: ...


@dataclass(frozen=True)
class Services:
    core: Core
    interpretation: Interpretation | None = None
    broadcasts: BroadcastService | None = None
    speakers: SpeakerPool | None = None  # the speaker bots (their login counters for /setup check)
    overlay: OverlayService | None = None  # None: the HTTP server is off, so there are no overlay links

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def database(self) -> Database:
        return self.core.database

    @property
    def credentials(self) -> Credentials | None:
        return self.core.credentials

    @property
    def palabra(self) -> PalabraRest | None:
        return self.core.palabra

    @property
    def metrics(self) -> Metrics:
        return self.core.metrics

    @property
    def options(self) -> Options:
        return self.core.options
