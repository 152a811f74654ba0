"""Running real, unmodified discord.py clients against a `FakeDiscord`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import discord

from tests.fakes.discord.server import FakeDiscord
from tests.fakes.waiting import wait_until

log = logging.getLogger(__name__)


def client_kwargs() -> dict:
    """Keyword arguments for a discord.Client against the fake: default intents, and a short
    `guild_ready_timeout` (discord.py otherwise waits 2 s after READY for more guilds)."""
    return {"intents": discord.Intents.default(), "guild_ready_timeout": 0.1}


async def wait_ready(client: discord.Client, task: asyncio.Task, timeout: float = 10.0) -> None:
    """Until `client` has READY and its guild (fails fast if `client.start()` died)."""

    def ready() -> bool:
        # Ready, and every guild available (READY lists them unavailable; GUILD_CREATE may come later).
        if client.is_ready() and client.guilds and all(not g.unavailable and g.channels for g in client.guilds):
            return True
        if task.done():
            task.result()  # raises the client's error
            raise RuntimeError("discord.py client stopped before becoming ready")
        return False

    await wait_until(ready, timeout, what="the discord.py client to be READY with its guilds available")


@contextlib.asynccontextmanager
async def running_clients(
    fake: FakeDiscord,
    tokens: Sequence[str] | None = None,
    *,
    factory: Callable[[], discord.Client] | None = None,
    timeout: float = 10.0,
) -> AsyncIterator[list[discord.Client]]:
    """Start one discord.Client per token (default: every bot of the fake), wait until all are ready,
    yield them in token order, close them on exit.

    `factory()` makes each client (default: `discord.Client(**client_kwargs())`);
    give e.g. a `commands.Bot` subclass or a client with a CommandTree.
    """
    fake.point_discord_py()
    tokens = list(tokens) if tokens is not None else [bot.token for bot in fake.bots]
    make = factory or (lambda: discord.Client(**client_kwargs()))
    clients = [make() for _ in tokens]
    tasks = [
        asyncio.create_task(client.start(token), name=f"discord client {index}")
        for index, (client, token) in enumerate(zip(clients, tokens, strict=False))
    ]
    try:
        for client, task in zip(clients, tasks, strict=False):
            await wait_ready(client, task, timeout)
        yield clients
    finally:
        for client in clients:
            for vc in list(client.voice_clients):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(vc.disconnect(force=True), 5)
            await client.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
